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
-- (types 0x40-0x5f, flag TAG_LIST). Keyed DATA (0x47) is the exception: a
-- short form of its own, magic:2 version:1 type:1 txid:8 index:4 payload
-- tag:8, the tag under the transfer key that PUT_ACCEPT carries wrapped
-- (proto/src/replicast/transfer.rs). Tags are shown, never verified: the
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

-- The dissector is split by concern into wireshark/subcast/*.lua, loaded here
-- in order into one environment (each part sees the names the earlier parts
-- define). Install both: this file and the subcast/ folder beside it.
local PARTS = { "names", "cursor", "encodings", "bodies", "replicast", "datagram" }

local function here()
  local src = debug.getinfo(1, "S").source
  return src:match("^@(.*[/\\])") or "./"
end

local env = setmetatable({ SUBCAST_PART = true }, { __index = _G })
for _, part in ipairs(PARTS) do
  local path = here() .. "subcast/" .. part .. ".lua"
  local f = assert(io.open(path, "r"), "subcast.lua: cannot open " .. path
    .. " (install the subcast/ folder beside subcast.lua)")
  local text = f:read("*a")
  f:close()
  assert(load(text, "@" .. path, "t", env))()
end
