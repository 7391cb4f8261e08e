-- Wireshark / tshark dissector for subcast: the push protocol (controller <->
-- switch agents), the rendezvous protocol (storage nodes <-> controller) and
-- Replicast (storage nodes <-> clients). See wireshark/README.md.
--
--   tshark -X lua_script:wireshark/subcast.lua -r capture.pcap -V
--   or copy this file to ~/.local/lib/wireshark/plugins/
--
-- Every datagram is a 32-octet header, a body and authentication
-- (draft-spec/draft-subcast-transactional-subset-multicast.md): a 32-octet
-- keyed BLAKE3 tag for push and rendezvous messages, a tag list (count,
-- then receiver id and 16-octet tag per receiver) for Replicast messages
-- (types 0x40-0x5f, flag TAG_LIST). Tags are shown, never verified: the
-- dissector has no key.
--
-- The checks mirror proto/src/ (the Rust decoder) one for one and in the
-- same order, so a datagram the daemons refuse is shown malformed here with
-- the same error kind as the test vectors' `error` field (truncated,
-- bad-magic, unsupported-version, unknown-type, length-mismatch, too-long,
-- invalid-field, trailing-bytes). Nothing here raises a Lua error on any
-- input: decoding runs under pcall, and a bug would show as the expert
-- info subcast.internal_error, which the tests require to be absent.
--
-- Field names follow the JSON of draft-spec/vectors/ (subcast.txid,
-- subcast.switch_id, subcast.group, ...): draft-spec/tests/dissector.rs
-- compares the two for every vector.

local subcast = Proto("subcast", "subcast (transactional subset multicast)")

local HEADER_LEN = 32
local TAG_LEN = 32
local MAX_DATAGRAM = 9216
local MAX_DATAGRAM_PAYLOAD = MAX_DATAGRAM - (HEADER_LEN + 16 + TAG_LEN)
local TAG_LIST = 0x0001
local TAG_ENTRY_LEN = 20
local DEFAULT_PORTS = "7410-7412"

----------------------------------------------------------------------------
-- Names
----------------------------------------------------------------------------

local msg_types = {
  [0x01] = "HELLO", [0x02] = "HEARTBEAT", [0x03] = "HELLO_ACK",
  [0x10] = "SET_SUBSET", [0x11] = "CLEAR", [0x12] = "ACK", [0x13] = "NAK",
  [0x14] = "BATCH", [0x15] = "BATCH_ACK",
  [0x20] = "RENDEZVOUS_REQUEST", [0x21] = "RENDEZVOUS_GRANT",
  [0x22] = "RENDEZVOUS_RELEASE", [0x23] = "RELEASE_ACK",
  [0x40] = "PUT_PROPOSAL", [0x41] = "PUT_BID", [0x42] = "PUT_ACCEPT",
  [0x43] = "DATA", [0x44] = "PUT_ACK", [0x45] = "NACK", [0x46] = "PUT_READY",
  [0x48] = "GET_REQUEST", [0x49] = "GET_OFFER", [0x4a] = "GET_FETCH",
  [0x4c] = "MANIFEST_QUERY", [0x4d] = "MANIFEST_OFFER",
}
local backends = { [1] = "linux-bridge", [2] = "openflow", [3] = "snmp" }
local nak_reasons = {
  [1] = "not-a-subset", [2] = "unknown-parent", [3] = "wrong-vlan",
  [4] = "bad-auth", [5] = "replay", [6] = "table-full",
  [7] = "backend-error", [8] = "malformed",
}
-- RENDEZVOUS_GRANT status: 0 grants, anything else is the refusal reason.
local grant_status = {
  [0] = "granted", [1] = "unknown-parent", [2] = "not-a-member",
  [3] = "pool-exhausted", [4] = "agent-refused", [5] = "agent-unreachable",
  [6] = "bad-request", [7] = "lifetime-too-long", [8] = "unauthorized",
  [9] = "internal", [10] = "table-full", [11] = "quota-exceeded",
}
local release_status = { [0] = "released", [1] = "unknown-lease" }
local member_forms = { [1] = "list", [2] = "bitmap" }
local member_types = { [1] = "mac", [2] = "ipv6", [3] = "ipv4" }
local batch_ops = { [1] = "set", [2] = "clear" }
local chunk_kinds = { [0] = "data", [1] = "manifest" }
local bid_status = { [0] = "bid", [1] = "already-stored", [2] = "not-now" }
local not_now_reasons = { [0] = "none", [1] = "busy", [2] = "full", [3] = "too-large" }
local ack_status = { [0] = "stored", [1] = "hash-mismatch", [2] = "store-failed",
  [3] = "busy", [4] = "full", [5] = "too-large" }
local offer_status = { [0] = "have", [1] = "corrupt" }

----------------------------------------------------------------------------
-- Fields
----------------------------------------------------------------------------

local F = {}
local function uint(width, name, label, names, b)
  local ctor = ({ [8] = ProtoField.uint8, [16] = ProtoField.uint16,
    [32] = ProtoField.uint32, [64] = ProtoField.uint64 })[width]
  F[name] = ctor("subcast." .. name, label, b or base.DEC, names)
end
-- Header.
uint(16, "magic", "Magic", nil, base.HEX)
uint(8, "version", "Version")
uint(8, "type", "Type", msg_types, base.HEX)
uint(16, "flags", "Flags", nil, base.HEX)
uint(16, "body_len", "Body length")
uint(32, "key_id", "Key ID")
uint(32, "sender_id", "Sender ID")
uint(64, "sequence", "Sequence number")
uint(64, "timestamp_us", "Timestamp (us since the Unix epoch)")
F.tag = ProtoField.bytes("subcast.tag", "Tag (keyed BLAKE3, not verified)")
uint(8, "tag_count", "Tag count")
uint(32, "receiver_id", "Receiver ID")
-- Push protocol.
uint(64, "txid", "Transaction ID")
uint(32, "switch_id", "Switch ID")
uint(8, "backend", "Backend", backends)
uint(16, "port_count", "Port count")
uint(32, "table_capacity", "Table capacity")
uint(64, "instance", "Instance")
uint(32, "installed_groups", "Installed groups")
uint(32, "uptime_s", "Uptime (s)")
uint(16, "vlan", "VLAN")
F.parent = ProtoField.ipv6("subcast.parent", "Parent group (Y)")
F.group = ProtoField.ipv6("subcast.group", "Group")
uint(32, "lifetime_ms", "Lifetime (ms)")
uint(8, "member_form", "Member form", member_forms)
uint(16, "member_count", "Member count")
uint(8, "member_type", "Member type", member_types)
F.member_mac = ProtoField.ether("subcast.member_mac", "Member MAC")
F.member_ipv6 = ProtoField.ipv6("subcast.member_ipv6", "Member IPv6")
F.member_ipv4 = ProtoField.ipv4("subcast.member_ipv4", "Member IPv4")
uint(16, "bitmap_bits", "Bitmap length (bits)")
F.bitmap = ProtoField.bytes("subcast.bitmap", "Bitmap")
uint(8, "nak_reason", "NAK reason", nak_reasons)
uint(8, "str_len", "String length")
F.detail = ProtoField.string("subcast.detail", "Detail")
F.software_version = ProtoField.string("subcast.software_version", "Software version")
uint(16, "item_count", "Item count")
uint(8, "op", "Operation", batch_ops)
-- Rendezvous.
uint(64, "request_id", "Request ID")
uint(8, "grant_status", "Status", grant_status)
uint(64, "lease_id", "Lease ID")
uint(64, "expires_at_ms", "Expires (ms since the Unix epoch)")
uint(8, "grant_flags", "Flags", nil, base.HEX)
F.reused = ProtoField.bool("subcast.reused", "Reused", 8, nil, 0x01)
F.unused = ProtoField.bytes("subcast.unused", "Unused in a refusal (zero)")
uint(8, "release_status", "Status", release_status)
F.released = ProtoField.bool("subcast.released", "Released")
-- Replicast.
F.chunk_id = ProtoField.bytes("subcast.chunk_id", "Chunk ID")
uint(32, "size", "Size")
uint(8, "kind", "Chunk kind", chunk_kinds)
uint(8, "replicas", "Replicas")
uint(8, "bid_status", "Bid status", bid_status)
uint(8, "not_now_reason", "Not-now reason", not_now_reasons)
uint(64, "earliest_start_us", "Earliest start (us since the Unix epoch)")
uint(32, "queue_depth", "Queue depth")
uint(64, "free_bytes", "Free bytes")
uint(32, "retry_after_ms", "Retry after (ms)")
uint(16, "datagram_payload", "Payload per datagram")
uint(8, "target_count", "Target count")
uint(32, "target", "Target node")
uint(32, "index", "Index")
uint(32, "total", "Total")
F.payload = ProtoField.bytes("subcast.payload", "Payload")
uint(8, "ack_status", "Ack status", ack_status)
uint(16, "range_count", "Range count")
uint(32, "range_start", "Range start")
uint(32, "range_end", "Range end (exclusive)")
uint(8, "offer_status", "Offer status", offer_status)
F.name_hash = ProtoField.bytes("subcast.name_hash", "Name hash")
uint(64, "object_version", "Object version")
uint(8, "version_count", "Version count")
uint(32, "writer", "Writer node")
F.manifest_id = ProtoField.bytes("subcast.manifest_id", "Manifest chunk ID")
-- Refusals.
F.error = ProtoField.string("subcast.error", "Refused as")

local field_list = {}
for _, v in pairs(F) do field_list[#field_list + 1] = v end
subcast.fields = field_list

local E = {
  malformed = ProtoExpert.new("subcast.malformed", "Malformed subcast datagram",
    expert.group.MALFORMED, expert.severity.ERROR),
  internal = ProtoExpert.new("subcast.internal_error", "subcast dissector bug",
    expert.group.UNDECODED, expert.severity.ERROR),
}
subcast.experts = { E.malformed, E.internal }

local pref_ports = "Ports"
subcast.prefs.ports = Pref.range(pref_ports, DEFAULT_PORTS,
  "UDP ports always decoded as subcast (elsewhere a heuristic finds datagrams "
  .. "with magic 0x5343, version 1 and a consistent body length)", 65535)

----------------------------------------------------------------------------
-- The cursor: reads within [off, lim) of a tvb, adds fields to a tree, and
-- raises a refusal (a table, caught by the dissector) exactly where the Rust
-- decoder would return an error.
----------------------------------------------------------------------------

local Refusal = {}
Refusal.__index = Refusal
local function refuse(kind, why)
  error(setmetatable({ kind = kind, why = why }, Refusal), 0)
end
local function invalid(field, why) refuse("invalid-field", "invalid " .. field .. ": " .. why) end

local Cur = {}
Cur.__index = Cur

local function cursor(tvb, off, lim, tree)
  return setmetatable({ tvb = tvb, off = off, lim = lim, tree = tree }, Cur)
end

function Cur:remaining() return self.lim - self.off end

-- Takes n octets (a TvbRange) or refuses as truncated.
function Cur:take(n, what)
  if self:remaining() < n then
    refuse("truncated", string.format("truncated in %s: needs %d more bytes, has %d",
      what, n, self:remaining()))
  end
  local r = self.tvb(self.off, n)
  self.off = self.off + n
  return r
end

-- Reads an unsigned integer of `width` bits and adds field `name`.
function Cur:uint(width, name, what)
  local r = self:take(width / 8, what or name)
  local item = self.tree:add(F[name], r)
  if width == 64 then return r:uint64(), item end
  return r:uint(), item
end

-- Reads a 16-octet IPv6 address into field `name`; returns the range too.
function Cur:ipv6(name, what)
  local r = self:take(16, what or name)
  local item = self.tree:add(F[name], r)
  return r, item
end

function Cur:bytes(n, name, what)
  local r = self:take(n, what or name)
  return r, self.tree:add(F[name], r)
end

-- Like Rust's Reader::check_count: count items of min_len octets must fit.
function Cur:check_count(count, min_len, what)
  local need = count * min_len
  if need > self:remaining() then
    refuse("truncated", string.format("truncated in %s: needs %d more bytes, has %d",
      what, need, self:remaining()))
  end
end

function Cur:subtree(label, len)
  local n = math.min(len or 0, self:remaining())
  local t = self.tree:add(self.tvb(self.off, n), label)
  t:set_len(n)
  return cursor(self.tvb, self.off, self.lim, t)
end

-- Continues the parent cursor after a child cursor finished.
function Cur:join(child)
  child.tree:set_len(child.off - self.off)
  self.off = child.off
end

-- Strict UTF-8, as Rust's std::str::from_utf8.
local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len, lo, hi = 0, 0x80, 0xbf
    if c < 0x80 then len = 1
    elseif c >= 0xc2 and c <= 0xdf then len = 2
    elseif c >= 0xe0 and c <= 0xef then
      len = 3
      if c == 0xe0 then lo = 0xa0 elseif c == 0xed then hi = 0x9f end
    elseif c >= 0xf0 and c <= 0xf4 then
      len = 4
      if c == 0xf0 then lo = 0x90 elseif c == 0xf4 then hi = 0x8f end
    else return false end
    if i + len - 1 > n then return false end
    for k = 1, len - 1 do
      local b = s:byte(i + k)
      local l, h = 0x80, 0xbf
      if k == 1 then l, h = lo, hi end
      if b < l or b > h then return false end
    end
    i = i + len
  end
  return true
end

-- A one-octet length then that many octets of UTF-8, at most `max`.
-- `show_empty` false hides an empty string (a grant's unused detail).
function Cur:short_str(name, max, what, show_empty)
  local len = self:uint(8, "str_len", what)
  if len > max then invalid(what, "longer than allowed") end
  local r = self:take(len, what)
  local s = len > 0 and r:raw() or ""
  if not valid_utf8(s) then invalid(what, "not UTF-8") end
  if len > 0 or show_empty ~= false then
    self.tree:add(F[name], r, s)
  end
  return s
end

-- An enum octet: refuses values without a name in `names`.
function Cur:enum(name, names, what, why)
  local v, item = self:uint(8, name, what)
  if names[v] == nil then invalid(what, why or "unknown code") end
  return v, item
end

local function is_multicast(r) return r:range(0, 1):uint() == 0xff end
local function is_unspecified(r)
  for i = 0, 15 do
    if r:range(i, 1):uint() ~= 0 then return false end
  end
  return true
end

-- An IPv4 group travels IPv4-mapped (::ffff:a.b.c.d): true for that form.
local function is_mapped(r)
  for i = 0, 9 do
    if r:range(i, 1):uint() ~= 0 then return false end
  end
  return r:range(10, 2):uint() == 0xffff
end

-- "ipv4" or "ipv6": the family of a 16-octet group field.
local function family(r) return is_mapped(r) and "ipv4" or "ipv6" end

local function check_multicast(r, what)
  if is_mapped(r) then
    local first = r:range(12, 1):uint()
    if first < 224 or first > 239 then
      invalid(what, "an IPv4 group must be a multicast address (224.0.0.0/4)")
    end
  elseif not is_multicast(r) then
    invalid(what, "must be an IPv6 multicast address (ff00::/8) or an IPv4-mapped IPv4 multicast address (::ffff:224.0.0.0/100)")
  end
end

-- Every IP member of a list is of the groups' family (MAC members fit any).
local function check_member_families(families, fam)
  for _, f in ipairs(families) do
    if f ~= "mac" and f ~= fam then
      if f == "ipv4" then
        invalid("member IPv4", "an IPv4 member in an IPv6 group: name it by its IPv6 or MAC address")
      end
      invalid("member IPv6", "an IPv6 member in an IPv4 group: name it by its IPv4 or MAC address")
    end
  end
end

----------------------------------------------------------------------------
-- Common encodings: members, member lists, bitmaps, ranges
----------------------------------------------------------------------------

local function member(c, i)
  local m = c:subtree("Member " .. i, 5)
  local t = m:uint(8, "member_type", "member type")
  local text
  if t == 1 then
    local r = m:bytes(6, "member_mac", "member MAC")
    text = tostring(r:ether())
  elseif t == 2 then
    local r = m:ipv6("member_ipv6", "member IPv6")
    if is_multicast(r) or is_unspecified(r) then
      invalid("member IPv6", "a member must be a unicast address")
    end
    if is_mapped(r) then
      invalid("member IPv6", "an IPv4-mapped address: send an IPv4 member (type 3)")
    end
    text = tostring(r:ipv6())
  elseif t == 3 then
    local r = m:bytes(4, "member_ipv4", "member IPv4")
    local a = r:uint()
    if (a >= 0xe0000000 and a < 0xf0000000) or a == 0 or a == 0xffffffff then
      invalid("member IPv4", "a member must be a unicast address")
    end
    text = tostring(r:ipv4())
  else
    invalid("member type", "must be 1 (MAC), 2 (IPv6) or 3 (IPv4)")
  end
  m.tree:append_text(": " .. text)
  c:join(m)
  return text, member_types[t]
end

local function member_list(c, label)
  local l = c:subtree(label, c:remaining())
  local n = l:uint(16, "member_count", "member count")
  if n == 0 then invalid("member count", "a subset needs at least one member") end
  if n > 512 then invalid("member count", "more than 512 members") end
  l:check_count(n, 5, "member list")
  local shown, families = {}, {}
  for i = 1, n do
    local text, fam = member(l, i)
    if i <= 4 then shown[#shown + 1] = text end
    families[#families + 1] = fam
  end
  l.tree:append_text(string.format(" (%d): %s%s", n, table.concat(shown, ", "),
    n > 4 and ", ..." or ""))
  c:join(l)
  return n, families
end

local function bitmap(c)
  local b = c:subtree("Bitmap", c:remaining())
  local bits = b:uint(16, "bitmap_bits", "bitmap length")
  if bits < 64 or bits > 4096 or bits % 64 ~= 0 then
    invalid("bitmap length", "must be a multiple of 64 from 64 to 4096 bits")
  end
  local r = b:bytes(bits / 8, "bitmap", "bitmap")
  local set = {}
  for i = 0, bits / 8 - 1 do
    local o = r:range(i, 1):uint()
    for k = 0, 7 do
      if math.floor(o / 2 ^ (7 - k)) % 2 == 1 then set[#set + 1] = tostring(i * 8 + k) end
    end
  end
  if #set == 0 then invalid("bitmap", "a subset needs at least one member bit set") end
  b.tree:append_text(": members " .. table.concat(set, ", ", 1, math.min(#set, 16))
    .. (#set > 16 and ", ..." or "") .. " of the parent's ordered list")
  c:join(b)
  return #set
end

local function members(c)
  local form = c:enum("member_form", member_forms, "member form",
    "must be 1 (list) or 2 (bitmap)")
  if form == 1 then return member_list(c, "Members") end
  return bitmap(c), {}
end

local function ranges(c, allow_empty)
  local l = c:subtree("Ranges", c:remaining())
  local n = l:uint(16, "range_count", "range count")
  if n == 0 and not allow_empty then invalid("range count", "a NACK names at least one range") end
  if n > 512 then invalid("range count", "more than 512 ranges") end
  l:check_count(n, 8, "ranges")
  for i = 1, n do
    local r = l:subtree("Range " .. i, 8)
    local s = r:uint(32, "range_start", "range start")
    local e = r:uint(32, "range_end", "range end")
    r.tree:append_text(string.format(": [%d, %d)", s, e))
    if s >= e then invalid("range", "start must be below end") end
    l:join(r)
  end
  l.tree:append_text(string.format(" (%d)", n))
  c:join(l)
end

local function check_vlan(c)
  local v = c:uint(16, "vlan", "VLAN")
  if v > 4094 then invalid("VLAN", "must be 0 (untagged) to 4094") end
end

-- SET_SUBSET and a BATCH set item share these fields after the txid/op.
local function subset_fields(c)
  check_vlan(c)
  local parent = c:ipv6("parent", "parent group")
  check_multicast(parent, "parent group")
  local group = c:ipv6("group", "subset group")
  check_multicast(group, "subset group")
  if group:bytes() == parent:bytes() then
    invalid("subset group", "must differ from the parent group")
  end
  local life = c:uint(32, "lifetime_ms", "lifetime")
  if life == 0 then invalid("lifetime", "must be at least 1 ms") end
  local _, families = members(c)
  if family(group) ~= family(parent) then
    invalid("subset group", "must be of the parent group's address family")
  end
  check_member_families(families, family(parent))
  return tostring(group:ipv6())
end

----------------------------------------------------------------------------
-- Bodies. Each returns a short summary for the Info column.
----------------------------------------------------------------------------

local body = {}

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

local function batch_item(c, i, seen)
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

-- Replicast (0x40..0x5f).

local function payload_size(c)
  local v = c:uint(16, "datagram_payload", "datagram payload")
  if v == 0 or v > MAX_DATAGRAM_PAYLOAD then
    invalid("datagram payload", "must be 1 to " .. MAX_DATAGRAM_PAYLOAD .. " octets")
  end
end

local function txid_chunk(c)
  local tx = c:uint(64, "txid", "txid")
  c:bytes(32, "chunk_id", "chunk id")
  return tx
end

body[0x40] = function(c) -- PUT_PROPOSAL
  local tx = txid_chunk(c)
  local size = c:uint(32, "size", "size")
  c:enum("kind", chunk_kinds, "chunk kind", "must be 0 (data) or 1 (manifest)")
  local n = c:uint(8, "replicas", "replicas")
  if n == 0 then invalid("replicas", "must be at least 1") end
  return string.format("txid %s, %d octets, %d replicas", tx, size, n)
end

body[0x41] = function(c) -- PUT_BID
  local tx = txid_chunk(c)
  local st = c:enum("bid_status", bid_status, "bid status")
  c:enum("not_now_reason", not_now_reasons, "not-now reason")
  c:uint(64, "earliest_start_us", "earliest start")
  c:uint(32, "queue_depth", "queue depth")
  c:uint(64, "free_bytes", "free bytes")
  c:uint(32, "retry_after_ms", "retry after")
  return string.format("txid %s %s", tx, bid_status[st])
end

body[0x42] = function(c) -- PUT_ACCEPT
  local tx = txid_chunk(c)
  c:uint(32, "size", "size")
  c:enum("kind", chunk_kinds, "chunk kind", "must be 0 (data) or 1 (manifest)")
  payload_size(c)
  local g = c:ipv6("group", "group")
  local mapped_multicast = is_mapped(g) and g:range(12, 1):uint() >= 224
    and g:range(12, 1):uint() <= 239
  if not is_multicast(g) and not is_unspecified(g) and not mapped_multicast then
    invalid("group", "must be multicast (IPv6, or IPv4 in IPv4-mapped form), or :: for unicast delivery")
  end
  local n = c:uint(8, "target_count", "target count")
  if n == 0 or n > 32 then invalid("target count", "must be 1 to 32") end
  c:check_count(n, 4, "targets")
  for _ = 1, n do c:uint(32, "target", "target") end
  return string.format("txid %s to %s, %d targets", tx, tostring(g:ipv6()), n)
end

body[0x43] = function(c) -- DATA
  local tx = c:uint(64, "txid", "txid")
  local i = c:uint(32, "index", "index")
  local n = c:uint(32, "total", "total")
  if i >= n then invalid("index", "must be below total") end
  local len = c:remaining()
  if len == 0 then invalid("payload", "a DATA datagram carries at least one octet") end
  c:bytes(len, "payload", "payload")
  return string.format("txid %s %d/%d, %d octets", tx, i, n, len)
end

body[0x44] = function(c) -- PUT_ACK
  local tx = txid_chunk(c)
  local st = c:enum("ack_status", ack_status, "ack status")
  return string.format("txid %s %s", tx, ack_status[st])
end

body[0x45] = function(c) -- NACK
  local tx = c:uint(64, "txid", "txid")
  ranges(c, false)
  return "txid " .. tostring(tx)
end

body[0x46] = function(c) return "txid " .. tostring(txid_chunk(c)) end -- PUT_READY
body[0x48] = body[0x46] -- GET_REQUEST

body[0x49] = function(c) -- GET_OFFER
  local tx = txid_chunk(c)
  local st = c:enum("offer_status", offer_status, "offer status")
  c:uint(32, "size", "size")
  return string.format("txid %s %s", tx, offer_status[st])
end

body[0x4a] = function(c) -- GET_FETCH
  local tx = txid_chunk(c)
  payload_size(c)
  ranges(c, true)
  return "txid " .. tostring(tx)
end

body[0x4c] = function(c) -- MANIFEST_QUERY
  local tx = c:uint(64, "txid", "txid")
  c:bytes(32, "name_hash", "name hash")
  local v = c:uint(64, "object_version", "version")
  return string.format("txid %s version %s", tx, v)
end

body[0x4d] = function(c) -- MANIFEST_OFFER
  local tx = c:uint(64, "txid", "txid")
  c:bytes(32, "name_hash", "name hash")
  local n = c:uint(8, "version_count", "version count")
  if n > 16 then invalid("version count", "more than 16 versions") end
  c:check_count(n, 48, "versions")
  for i = 1, n do
    local v = c:subtree("Version " .. i, 48)
    local num = v:uint(64, "object_version", "version")
    local writer = v:uint(32, "writer", "writer")
    v:bytes(32, "manifest_id", "manifest id")
    v:uint(32, "size", "manifest size")
    v.tree:append_text(": " .. tostring(num) .. " by " .. writer)
    c:join(v)
  end
  return string.format("txid %s, %d versions", tx, n)
end

----------------------------------------------------------------------------
-- The datagram
----------------------------------------------------------------------------

local function timestamp_text(us)
  local s = (us / 1000000):tonumber()
  local frac = (us % 1000000):tonumber()
  return string.format(" (%s.%06d UTC)", os.date("!%Y-%m-%d %H:%M:%S", s), frac)
end

-- Header, body, tag; refuses like proto's decode_any.
local function datagram(tvb, root, info)
  local len = tvb:len()
  local h = cursor(tvb, 0, len, root:add(tvb(0, math.min(len, HEADER_LEN)), "Header"))
  if len > MAX_DATAGRAM then
    refuse("too-long", string.format("datagram of %d bytes exceeds the maximum of %d",
      len, MAX_DATAGRAM))
  end
  local magic, mi = h:uint(16, "magic", "magic")
  if magic ~= 0x5343 then
    mi:append_text(" (expected 0x5343)")
    refuse("bad-magic", string.format("not a subcast datagram (magic 0x%04x)", magic))
  end
  local version = h:uint(8, "version", "version")
  if version ~= 1 then
    refuse("unsupported-version", "protocol version " .. version .. " is not supported")
  end
  local ty = h:uint(8, "type", "type")
  info.type = msg_types[ty] or string.format("type 0x%02x", ty)
  local replicast = ty >= 0x40 and ty <= 0x5f
  local flags = h:uint(16, "flags", "flags")
  if not replicast then
    if flags ~= 0 then invalid("flags", "must be zero in version 1") end
  elseif flags > TAG_LIST then
    invalid("flags", "unknown flag (only TAG_LIST, 0x0001, is defined)")
  elseif flags ~= TAG_LIST then
    invalid("flags", "a Replicast datagram carries a tag list (flag 0x0001)")
  end
  local body_len = h:uint(16, "body_len", "body length")
  h:uint(32, "key_id", "key id")
  info.sender = h:uint(32, "sender_id", "sender id")
  h:uint(64, "sequence", "sequence")
  local ts, ti = h:uint(64, "timestamp_us", "timestamp")
  ti:append_text(timestamp_text(ts))

  local bt
  if replicast then
    -- Replicast: body, then the tag list (as proto's replicast::tagged).
    if len - HEADER_LEN < body_len then
      refuse("truncated", string.format("truncated in body: needs %d more bytes, has %d",
        body_len, len - HEADER_LEN))
    end
    bt = root:add(tvb(HEADER_LEN, body_len), info.type)
    local t = cursor(tvb, HEADER_LEN + body_len, len, root)
    local n = t:uint(8, "tag_count", "tag count")
    if n == 0 then invalid("tag count", "a datagram names at least one receiver") end
    t:check_count(n, TAG_ENTRY_LEN, "tag list")
    for _ = 1, n do
      local e = t:subtree("Tag", TAG_ENTRY_LEN)
      local r = e:uint(32, "receiver_id", "tag list")
      e:bytes(16, "tag", "tag list")
      e.tree:append_text(" for receiver " .. r)
      t:join(e)
    end
    if t:remaining() ~= 0 then
      refuse("trailing-bytes", t:remaining() .. " unexpected bytes after the message body")
    end
  else
    local actual = math.max(len - HEADER_LEN - TAG_LEN, 0)
    if len - HEADER_LEN < TAG_LEN or actual ~= body_len then
      refuse("length-mismatch", string.format(
        "body length %d does not match the datagram (%d bytes of body)", body_len, actual))
    end
    bt = root:add(tvb(HEADER_LEN, body_len), info.type)
    -- The tag is shown before the body is checked, so a refused body still shows it.
    root:add(F.tag, tvb(HEADER_LEN + body_len, TAG_LEN))
  end
  local parse = body[ty]
  if parse == nil then refuse("unknown-type", string.format("unknown message type 0x%02x", ty)) end
  local c = cursor(tvb, HEADER_LEN, HEADER_LEN + body_len, bt)
  info.summary = parse(c)
  if c:remaining() ~= 0 then
    refuse("trailing-bytes", c:remaining() .. " unexpected bytes after the message body")
  end
end

function subcast.dissector(tvb, pinfo, tree)
  local len = tvb:len()
  pinfo.cols.protocol = "subcast"
  local root = tree:add(subcast, tvb())
  local info = {}
  local ok, err = pcall(datagram, tvb, root, info)
  local text = info.type or "subcast"
  if info.summary then text = text .. " " .. info.summary end
  if ok then
    root:append_text(": " .. text)
  elseif getmetatable(err) == Refusal then
    root:add(F.error, err.kind):set_generated()
    root:add_proto_expert_info(E.malformed, "Malformed (" .. err.kind .. "): " .. err.why)
    text = text .. " [Malformed: " .. err.kind .. "]"
    root:append_text(": " .. text)
  else
    root:add_proto_expert_info(E.internal, "subcast dissector bug: " .. tostring(err))
  end
  pinfo.cols.info = text
  return len
end

----------------------------------------------------------------------------
-- Registration: fixed ports, plus a heuristic for any other UDP port.
----------------------------------------------------------------------------

local udp_port = DissectorTable.get("udp.port")
local registered = DEFAULT_PORTS
udp_port:add(registered, subcast)

function subcast.prefs_changed()
  if subcast.prefs.ports ~= registered then
    udp_port:remove(registered, subcast)
    registered = subcast.prefs.ports
    udp_port:add(registered, subcast)
  end
end

-- Whether a Replicast datagram's tag list accounts for its length.
local function tag_list_fits(tvb, len)
  local at = HEADER_LEN + tvb(6, 2):uint()
  if at >= len then return false end
  return at + 1 + tvb(at, 1):uint() * TAG_ENTRY_LEN == len
end

local function heuristic(tvb, pinfo, tree)
  local len = tvb:len()
  if len < HEADER_LEN + 1 or len > MAX_DATAGRAM then return false end
  if tvb(0, 2):uint() ~= 0x5343 or tvb(2, 1):uint() ~= 1 then return false end
  local ty = tvb(3, 1):uint()
  if ty >= 0x40 and ty <= 0x5f then
    if tvb(4, 2):uint() ~= TAG_LIST or not tag_list_fits(tvb, len) then return false end
  elseif tvb(6, 2):uint() + HEADER_LEN + TAG_LEN ~= len then
    return false
  end
  subcast.dissector(tvb, pinfo, tree)
  return true
end
subcast:register_heuristic("udp", heuristic)
