-- subcast dissector, part: the datagram (header, body, tag), the dissector and its
-- registration.
-- Loaded by ../subcast.lua into one environment shared by every part
-- (top-level names are shared); it does nothing when loaded on its own
-- (Wireshark loads every .lua under its plugin folder).
if not SUBCAST_PART then return end

----------------------------------------------------------------------------
-- The datagram
----------------------------------------------------------------------------

function timestamp_text(us)
  local s = (us / 1000000):tonumber()
  local frac = (us % 1000000):tonumber()
  return string.format(" (%s.%06d UTC)", os.date("!%Y-%m-%d %H:%M:%S", s), frac)
end

-- Whether a datagram starts as keyed DATA does (magic, version 1, type
-- 0x47, or 0x4e untagged): then it has keyed DATA's own layout, not
-- header, body and tag.
function is_keyed_data(tvb)
  if tvb:len() < 4 or tvb(0, 2):uint() ~= 0x5343 or tvb(2, 1):uint() ~= 1 then
    return false
  end
  local ty = tvb(3, 1):uint()
  return ty == KEYED_DATA or ty == UNTAGGED_DATA
end

-- Header, body, tag; refuses like proto's decode_any. Keyed DATA is told
-- apart first, as KeyedData::parse does before a storage node decodes.
function datagram(tvb, root, info)
  if is_keyed_data(tvb) then
    info.summary = keyed_data(tvb, root, info)
    return
  end
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

udp_port = DissectorTable.get("udp.port")
registered = DEFAULT_PORTS
udp_port:add(registered, subcast)

function subcast.prefs_changed()
  if subcast.prefs.ports ~= registered then
    udp_port:remove(registered, subcast)
    registered = subcast.prefs.ports
    udp_port:add(registered, subcast)
  end
end

-- Whether a Replicast datagram's tag list accounts for its length.
function tag_list_fits(tvb, len)
  local at = HEADER_LEN + tvb(6, 2):uint()
  if at >= len then return false end
  return at + 1 + tvb(at, 1):uint() * TAG_ENTRY_LEN == len
end

function heuristic(tvb, pinfo, tree)
  local len = tvb:len()
  if len < KEYED_DATA_PREFIX + 1 or len > MAX_DATAGRAM then return false end
  if tvb(0, 2):uint() ~= 0x5343 or tvb(2, 1):uint() ~= 1 then return false end
  local ty = tvb(3, 1):uint()
  -- Keyed DATA has no length or count to check: its 4-octet prefix and a
  -- length that holds its fields, the tag and a payload octet; untagged
  -- DATA the same without the tag.
  if ty == UNTAGGED_DATA or (ty == KEYED_DATA and len >= KEYED_DATA_OVERHEAD + 1) then
    subcast.dissector(tvb, pinfo, tree)
    return true
  end
  if len < KEYED_DATA_OVERHEAD + 1 then return false end
  if len < HEADER_LEN + 1 then return false end
  if ty >= 0x40 and ty <= 0x5f then
    if tvb(4, 2):uint() ~= TAG_LIST or not tag_list_fits(tvb, len) then return false end
  elseif tvb(6, 2):uint() + HEADER_LEN + TAG_LEN ~= len then
    return false
  end
  subcast.dissector(tvb, pinfo, tree)
  return true
end
subcast:register_heuristic("udp", heuristic)
