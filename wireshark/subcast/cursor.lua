-- subcast dissector, part: the cursor over a tvb, refusals, and the address checks
-- (multicast, families).
-- Loaded by ../subcast.lua into one environment shared by every part
-- (top-level names are shared); it does nothing when loaded on its own
-- (Wireshark loads every .lua under its plugin folder).
if not SUBCAST_PART then return end

----------------------------------------------------------------------------
-- The cursor: reads within [off, lim) of a tvb, adds fields to a tree, and
-- raises a refusal (a table, caught by the dissector) exactly where the Rust
-- decoder would return an error.
----------------------------------------------------------------------------

Refusal = {}
Refusal.__index = Refusal
function refuse(kind, why)
  error(setmetatable({ kind = kind, why = why }, Refusal), 0)
end
function invalid(field, why) refuse("invalid-field", "invalid " .. field .. ": " .. why) end

Cur = {}
Cur.__index = Cur

function cursor(tvb, off, lim, tree)
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
function valid_utf8(s)
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

function is_multicast(r) return r:range(0, 1):uint() == 0xff end
function is_unspecified(r)
  for i = 0, 15 do
    if r:range(i, 1):uint() ~= 0 then return false end
  end
  return true
end

-- An IPv4 group travels IPv4-mapped (::ffff:a.b.c.d): true for that form.
function is_mapped(r)
  for i = 0, 9 do
    if r:range(i, 1):uint() ~= 0 then return false end
  end
  return r:range(10, 2):uint() == 0xffff
end

-- "ipv4" or "ipv6": the family of a 16-octet group field.
function family(r) return is_mapped(r) and "ipv4" or "ipv6" end

function check_multicast(r, what)
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
function check_member_families(families, fam)
  for _, f in ipairs(families) do
    if f ~= "mac" and f ~= fam then
      if f == "ipv4" then
        invalid("member IPv4", "an IPv4 member in an IPv6 group: name it by its IPv6 or MAC address")
      end
      invalid("member IPv6", "an IPv6 member in an IPv4 group: name it by its IPv4 or MAC address")
    end
  end
end
