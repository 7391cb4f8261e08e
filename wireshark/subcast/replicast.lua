-- subcast dissector, part: bodies of the Replicast messages (0x40..0x5f).
-- Loaded by ../subcast.lua into one environment shared by every part
-- (top-level names are shared); it does nothing when loaded on its own
-- (Wireshark loads every .lua under its plugin folder).
if not SUBCAST_PART then return end

-- Replicast (0x40..0x5f).

function payload_size(c)
  local v = c:uint(16, "datagram_payload", "datagram payload")
  if v == 0 or v > MAX_DATAGRAM_PAYLOAD then
    invalid("datagram payload", "must be 1 to " .. MAX_DATAGRAM_PAYLOAD .. " octets")
  end
end

function txid_chunk(c)
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
  local targets = {}
  for i = 1, n do targets[i] = c:uint(32, "target", "target") end
  local keyed = c:remaining() > 0 and transfer_keys(c, targets) or ""
  return string.format("txid %s to %s, %d targets%s", tx, tostring(g:ipv6()), n, keyed)
end

-- PUT_ACCEPT's optional last section: the transfer key wrapped for each
-- target (DATA then comes as keyed DATA, 0x47), in the order of the targets.
function transfer_keys(c, targets)
  local k = c:subtree("Transfer keys", c:remaining())
  local n = k:uint(8, "key_count", "key count")
  if n ~= #targets then
    invalid("key count", "must equal the target count (one wrapped key per target)")
  end
  k:check_count(n, WRAPPED_KEY_LEN, "wrapped keys")
  for i = 1, n do
    local _, item = k:bytes(WRAPPED_KEY_LEN, "wrapped_key", "wrapped key")
    item:append_text(" (for target " .. targets[i] .. ")")
  end
  k.tree:append_text(string.format(" (%d, wrapped, not unwrapped)", n))
  c:join(k)
  return ", keyed DATA"
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

-- Keyed DATA (0x47): not the 32-octet header, body and tag list of the
-- others but a short form of its own (proto/src/replicast/transfer.rs):
--   magic:2 version:1 type:1 txid:8 index:4 payload tag:8
-- tag = the first 8 octets of BLAKE3-keyed(transfer key, every octet before
-- it). The transfer key travels wrapped in the PUT_ACCEPT; the tag is shown,
-- never verified. Untagged DATA (0x4e) is the same without the tag.
-- Refuses like KeyedData::parse: longer than the datagram limit
-- (too-long), shorter than its fields, tag and one payload octet
-- (invalid-field).
function keyed_data(tvb, root, info)
  local len = tvb:len()
  local tagged = tvb(3, 1):uint() == KEYED_DATA
  local tag_len = tagged and KEYED_TAG_LEN or 0
  local what = tagged and "keyed DATA" or "untagged DATA"
  info.type = msg_types[tvb(3, 1):uint()]
  local h = cursor(tvb, 0, len, root:add(tvb(0, 4), "Header (" .. what .. ")"))
  h:uint(16, "magic", "magic")
  h:uint(8, "version", "version")
  h:uint(8, "type", "type")
  if len > MAX_DATAGRAM then
    refuse("too-long", string.format("datagram of %d bytes exceeds the maximum of %d",
      len, MAX_DATAGRAM))
  end
  if len < KEYED_DATA_PREFIX + tag_len + 1 then
    if tagged then
      invalid("keyed DATA", "shorter than its fields, a tag and one payload octet ("
        .. KEYED_DATA_OVERHEAD + 1 .. " octets)")
    else
      invalid("untagged DATA", "shorter than its fields and one payload octet ("
        .. KEYED_DATA_PREFIX + 1 .. " octets)")
    end
  end
  local plen = len - KEYED_DATA_PREFIX - tag_len
  local c = cursor(tvb, 4, len - tag_len, root:add(tvb(4, len - 4 - tag_len), info.type))
  local tx = c:uint(64, "txid", "txid")
  local i = c:uint(32, "index", "index")
  local _, pi = c:bytes(plen, "payload", "payload")
  pi:append_text(" (" .. plen .. " octets)")
  c.tree:add(F.payload_len, tvb(KEYED_DATA_PREFIX, plen), plen):set_generated()
  if tagged then
    local t = root:add(F.tag, tvb(len - KEYED_TAG_LEN, KEYED_TAG_LEN))
    t:append_text(" (8 octets, under the transfer key)")
  end
  return string.format("txid %s index %d, %d octets", tx, i, plen)
end
