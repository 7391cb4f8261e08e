-- subcast dissector, part: bodies of the push and rendezvous messages (and BATCH items).
-- Loaded by ../subcast.lua into one environment shared by every part
-- (top-level names are shared); it does nothing when loaded on its own
-- (Wireshark loads every .lua under its plugin folder).
if not SUBCAST_PART then return end

----------------------------------------------------------------------------
-- Bodies. Each returns a short summary for the Info column.
----------------------------------------------------------------------------

body = {}

body[0x01] = function(c) -- HELLO
  local sw = c:uint(32, "switch_id", "switch id")
  c:enum("backend", backends, "backend kind", "must be 1, 2 or 3")
  c:uint(16, "port_count", "port count")
  c:uint(32, "table_capacity", "table capacity")
  c:uint(64, "instance", "instance")
  c:short_str("software_version", 64, "software version")
  return "switch " .. sw
end

body[0x02] = function(c) -- HEARTBEAT
  local sw = c:uint(32, "switch_id", "switch id")
  local n = c:uint(32, "installed_groups", "installed groups")
  c:uint(32, "uptime_s", "uptime")
  c:uint(32, "table_capacity", "table capacity")
  return string.format("switch %d, %d groups", sw, n)
end

body[0x03] = function(c) -- HELLO_ACK
  local sw = c:uint(32, "switch_id", "switch id")
  c:uint(64, "instance", "instance")
  return "switch " .. sw
end

body[0x10] = function(c) -- SET_SUBSET
  local tx = c:uint(64, "txid", "transaction id")
  local g = subset_fields(c)
  return string.format("txid %s group %s", tx, g)
end

body[0x11] = function(c) -- CLEAR
  local tx = c:uint(64, "txid", "transaction id")
  local g = c:ipv6("group", "subset group")
  check_multicast(g, "subset group")
  return string.format("txid %s group %s", tx, tostring(g:ipv6()))
end

body[0x12] = function(c) -- ACK
  local tx = c:uint(64, "txid", "transaction id")
  local sw = c:uint(32, "switch_id", "switch id")
  local p = c:uint(16, "port_count", "port count")
  return string.format("txid %s switch %d, %d ports", tx, sw, p)
end

body[0x13] = function(c) -- NAK
  local tx = c:uint(64, "txid", "transaction id")
  local sw = c:uint(32, "switch_id", "switch id")
  local why = c:enum("nak_reason", nak_reasons, "NAK reason", "unknown reason code")
  c:short_str("detail", 255, "detail")
  return string.format("txid %s switch %d: %s", tx, sw, nak_reasons[why])
end

function batch_item(c, i, seen)
  local it = c:subtree("Item " .. i, 17)
  local op = it:enum("op", batch_ops, "batch item op", "must be 1 (set) or 2 (clear)")
  local g
  if op == 1 then
    g = subset_fields(it)
  else
    local r = it:ipv6("group", "subset group")
    check_multicast(r, "subset group")
    g = tostring(r:ipv6())
  end
  it.tree:append_text(string.format(": %s %s", batch_ops[op], g))
  c:join(it)
  if seen[g] then invalid("batch item", "a subset group appears twice in one batch") end
  seen[g] = true
end

body[0x14] = function(c) -- BATCH
  local tx = c:uint(64, "txid", "transaction id")
  local n = c:uint(16, "item_count", "item count")
  if n == 0 then invalid("item count", "a batch needs at least one item") end
  if n > 128 then invalid("item count", "more than 128 items") end
  c:check_count(n, 17, "batch items")
  local seen = {}
  for i = 1, n do batch_item(c, i, seen) end
  return string.format("txid %s, %d items", tx, n)
end

body[0x15] = function(c) -- BATCH_ACK
  local tx = c:uint(64, "txid", "transaction id")
  local sw = c:uint(32, "switch_id", "switch id")
  local n = c:uint(16, "item_count", "item count")
  if n == 0 or n > 128 then invalid("item count", "must be 1 to 128") end
  c:check_count(n, 2, "port counts")
  for _ = 1, n do c:uint(16, "port_count", "port count") end
  return string.format("txid %s switch %d, %d items", tx, sw, n)
end

body[0x20] = function(c) -- RENDEZVOUS_REQUEST
  local id = c:uint(64, "request_id", "request id")
  check_vlan(c)
  local parent = c:ipv6("parent", "parent group")
  check_multicast(parent, "parent group")
  c:uint(32, "lifetime_ms", "lifetime")
  local n, families = member_list(c, "Targets")
  check_member_families(families, family(parent))
  return string.format("request %s, %d targets in %s", id, n, tostring(parent:ipv6()))
end

body[0x21] = function(c) -- RENDEZVOUS_GRANT
  local id = c:uint(64, "request_id", "request id")
  local status_r = c:take(1, "status")
  local status = status_r:uint()
  local st_item = c.tree:add(F.grant_status, status_r)
  local group, flags_r
  if status == 0 then
    group = c:ipv6("group", "group")
    c:uint(64, "lease_id", "lease id")
    c:uint(64, "expires_at_ms", "expiry")
    flags_r = c:take(1, "flags")
    c.tree:add(F.grant_flags, flags_r)
    c.tree:add(F.reused, flags_r)
  else
    c:bytes(32, "unused", "group")
    flags_r = c:take(1, "flags")
    c.tree:add(F.grant_flags, flags_r)
  end
  local flags = flags_r:uint()
  if flags >= 2 then invalid("flags", "unknown flag bits set") end
  local detail = c:short_str("detail", 255, "detail", status ~= 0)
  if status == 0 then
    check_multicast(group, "group")
    return string.format("request %s granted %s%s", id, tostring(group:ipv6()),
      flags == 1 and " (reused)" or "")
  end
  if grant_status[status] == nil then
    st_item:append_text(" (unknown refusal reason)")
    invalid("status", "unknown refusal reason")
  end
  return string.format("request %s refused: %s %s", id, grant_status[status], detail)
end

body[0x22] = function(c) -- RENDEZVOUS_RELEASE
  return "lease " .. tostring(c:uint(64, "lease_id", "lease id"))
end

body[0x23] = function(c) -- RELEASE_ACK
  local id = c:uint(64, "lease_id", "lease id")
  local r = c:take(1, "status")
  local st = r:uint()
  c.tree:add(F.release_status, r)
  if st > 1 then invalid("status", "must be 0 (released) or 1 (unknown lease)") end
  c.tree:add(F.released, r, st == 0):set_generated()
  return string.format("lease %s %s", id, release_status[st])
end
