#!/usr/bin/env bash
# Renders the Internet-Draft to XML (kramdown-rfc2629) and text (xml2rfc),
# offline: references come from draft-spec/refcache/. Output in
# target/draft/. Fails if either tool reports an error.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../target/draft}"
mkdir -p "$out"
name=draft-subcast-transactional-subset-multicast
for tool in kramdown-rfc2629 xml2rfc; do
  command -v "$tool" >/dev/null || { echo "render.sh: $tool is missing (apt-get install ruby-kramdown-rfc2629; pip install xml2rfc)" >&2; exit 1; }
done
export KRAMDOWN_OFFLINE=1 KRAMDOWN_REFCACHEDIR="$here/refcache" KRAMDOWN_REFCACHE_REFETCH=0
kramdown-rfc2629 "$here/$name.md" > "$out/$name.xml" 2> "$out/kramdown.log" || { cat "$out/kramdown.log" >&2; exit 1; }
if grep -E 'broken reference|Failed to open|\*\*\* .*(error|unknown)' "$out/kramdown.log" >&2; then
  echo "render.sh: kramdown-rfc reported problems (above)" >&2; exit 1
fi
# kramdown-rfc 1.6.22 (Debian 12) drops the abstract (prints "sections left
# [nil]"); put the "--- abstract" paragraphs back into <abstract>.
python3 - "$here/$name.md" "$out/$name.xml" <<'PY'
import html, re, sys
md, xml = sys.argv[1], sys.argv[2]
text = open(md).read()
abstract = text.split("--- abstract", 1)[1].split("--- middle", 1)[0]
paras = [" ".join(p.split()) for p in abstract.strip().split("\n\n") if p.strip()]
body = "".join(f"<t>{html.escape(p, quote=False)}</t>" for p in paras)
doc = open(xml).read()
doc, n = re.subn(r"<abstract>\s*</abstract>", f"<abstract>{body}</abstract>", doc, count=1)
open(xml, "w").write(doc)
PY
xml2rfc --no-network --text --quiet "$out/$name.xml" -o "$out/$name.txt" 2> "$out/xml2rfc.log" || { cat "$out/xml2rfc.log" >&2; exit 1; }
if grep -i 'error' "$out/xml2rfc.log" >&2; then exit 1; fi
echo "rendered $out/$name.txt ($(wc -l < "$out/$name.txt") lines)"
