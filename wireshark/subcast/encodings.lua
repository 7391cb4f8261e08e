-- subcast dissector, part: common encodings: members, member lists, bitmaps, ranges,
-- SET_SUBSET fields.
-- Loaded by ../subcast.lua into one environment shared by every part
-- (top-level names are shared); it does nothing when loaded on its own
-- (Wireshark loads every .lua under its plugin folder).
if not SUBCAST_PART then return end

----------------------------------------------------------------------------
-- Common encodings: members, member lists, bitmaps, ranges
----------------------------------------------------------------------------

function member(c, i)
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

function member_list(c, label)
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

function bitmap(c)
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

function members(c)
  local form = c:enum("member_form", member_forms, "member form",
    "must be 1 (list) or 2 (bitmap)")
  if form == 1 then return member_list(c, "Members") end
  return bitmap(c), {}
end

function ranges(c, allow_empty)
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

function check_vlan(c)
  local v = c:uint(16, "vlan", "VLAN")
  if v > 4094 then invalid("VLAN", "must be 0 (untagged) to 4094") end
end

-- SET_SUBSET and a BATCH set item share these fields after the txid/op.
function subset_fields(c)
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
