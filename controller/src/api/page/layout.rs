//! The page shell (head, inline CSS, header) and small pieces shared by
//! the pages: the occupancy bar, state badges, times. Markup is `maud`,
//! which escapes every interpolated value.

use crate::cli::table::{short_ms, utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// Seconds between reloads of the page (`<meta http-equiv=refresh>`).
pub const REFRESH_S: u32 = 10;

const CSS: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff;margin-bottom:.5em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eee}td.num{text-align:right}
.muted{color:#777}.mono{font-family:ui-monospace,monospace}
.up{color:#060;font-weight:bold}.down{color:#b00;font-weight:bold}.unknown{color:#a60;font-weight:bold}
.bad{color:#b00;font-weight:bold}.ok{color:#060}
.bar{display:inline-block;width:120px;height:.8em;border:1px solid #999;background:#fff;vertical-align:middle;margin-right:.4em}
.bar span{display:block;height:100%;background:#4a8}.bar span.hi{background:#d80}.bar span.full{background:#c33}
";

/// A whole page: `title` in the head and as the heading, `body` below.
pub fn page(title: &str, now_ms: u64, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(REFRESH_S);
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { (title) }
                p.muted {
                    "As of " span #generated { (utc(now_ms)) }
                    " (reloads every " (REFRESH_S) " s) · "
                    a href="/status" { "overview" }
                }
                (body)
            }
        }
    }
}

/// A short error page (401, 403, 404).
pub fn message(title: &str, text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) } style { (PreEscaped(CSS)) } }
            body { h1 { (title) } p { (text) } }
        }
    }
}

/// `used` of `limit` as a bar and the numbers.
pub fn bar(used: u32, limit: u32) -> Markup {
    let pct = if limit == 0 {
        if used == 0 { 0 } else { 100 }
    } else {
        (u64::from(used) * 100 / u64::from(limit)).min(100)
    };
    let class = match pct {
        0..=74 => "",
        75..=99 => "hi",
        _ => "full",
    };
    html! {
        span.bar title={ (used) " of " (limit) } {
            span class=(class) style={ "width:" (pct) "%" } {}
        }
        (used) " / " (limit)
    }
}

/// A state word with its colour class (up, down, unknown; yes/NO).
pub fn badge(class: &str, text: &str) -> Markup {
    html! { span class=(class) { (text) } }
}

/// "12.3s ago" from Unix ms.
pub fn ago(now_ms: u64, at_ms: u64) -> String {
    format!("{} ago", short_ms(now_ms.saturating_sub(at_ms)))
}

/// "in 4m05s" or "ended".
pub fn until(now_ms: u64, at_ms: u64) -> String {
    if at_ms > now_ms {
        format!("in {}", short_ms(at_ms - now_ms))
    } else {
        "ended".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_width_and_class_follow_occupancy() {
        let s = bar(3, 4).into_string();
        assert!(s.contains("width:75%") && s.contains("class=\"hi\""), "{s}");
        assert!(s.contains("3 / 4"), "{s}");
        let s = bar(9, 8).into_string();
        assert!(s.contains("width:100%") && s.contains("full"), "{s}");
        assert!(bar(0, 0).into_string().contains("width:0%"));
        assert!(bar(1, 0).into_string().contains("width:100%"));
    }

    #[test]
    fn markup_escapes_what_it_is_given() {
        let s = message("<b>t</b>", "a & \"b\" <script>x</script>").into_string();
        assert!(!s.contains("<script>x"), "{s}");
        assert!(s.contains("&lt;script&gt;x&lt;/script&gt;"), "{s}");
        assert!(s.contains("&lt;b&gt;t&lt;/b&gt;"), "{s}");
        assert!(s.contains("a &amp; &quot;b&quot;"), "{s}");
    }
}
