-- subcast dissector, part: constants, names of enumerated values, the Proto, its fields,
-- expert infos and preferences.
-- Loaded by ../subcast.lua into one environment shared by every part
-- (top-level names are shared); it does nothing when loaded on its own
-- (Wireshark loads every .lua under its plugin folder).
if not SUBCAST_PART then return end

subcast = Proto("subcast", "subcast (transactional subset multicast)")

HEADER_LEN = 32
TAG_LEN = 32
MAX_DATAGRAM = 9216
MAX_DATAGRAM_PAYLOAD = MAX_DATAGRAM - (HEADER_LEN + 16 + TAG_LEN)
TAG_LIST = 0x0001
TAG_ENTRY_LEN = 20
-- Keyed DATA (0x47, proto/src/replicast/transfer.rs): magic, version, type,
-- txid:8, index:4, payload, then an 8-octet tag under the transfer key.
KEYED_DATA = 0x47
-- Untagged DATA (0x4e): keyed DATA without its tag (the first pass of a
-- transfer sends every index but each 32nd so).
UNTAGGED_DATA = 0x4e
KEYED_DATA_PREFIX = 4 + 8 + 4
KEYED_TAG_LEN = 8
KEYED_DATA_OVERHEAD = KEYED_DATA_PREFIX + KEYED_TAG_LEN
WRAPPED_KEY_LEN = 32
DEFAULT_PORTS = "7410-7412"

----------------------------------------------------------------------------
-- Names
----------------------------------------------------------------------------

msg_types = {
  [0x01] = "HELLO", [0x02] = "HEARTBEAT", [0x03] = "HELLO_ACK",
  [0x10] = "SET_SUBSET", [0x11] = "CLEAR", [0x12] = "ACK", [0x13] = "NAK",
  [0x14] = "BATCH", [0x15] = "BATCH_ACK",
  [0x20] = "RENDEZVOUS_REQUEST", [0x21] = "RENDEZVOUS_GRANT",
  [0x22] = "RENDEZVOUS_RELEASE", [0x23] = "RELEASE_ACK",
  [0x40] = "PUT_PROPOSAL", [0x41] = "PUT_BID", [0x42] = "PUT_ACCEPT",
  [0x43] = "DATA", [0x44] = "PUT_ACK", [0x45] = "NACK", [0x46] = "PUT_READY",
  [0x47] = "KEYED_DATA",
  [0x48] = "GET_REQUEST", [0x49] = "GET_OFFER", [0x4a] = "GET_FETCH",
  [0x4c] = "MANIFEST_QUERY", [0x4d] = "MANIFEST_OFFER",
  [0x4e] = "UNTAGGED_DATA",
}
backends = { [1] = "linux-bridge", [2] = "openflow", [3] = "snmp" }
nak_reasons = {
  [1] = "not-a-subset", [2] = "unknown-parent", [3] = "wrong-vlan",
  [4] = "bad-auth", [5] = "replay", [6] = "table-full",
  [7] = "backend-error", [8] = "malformed",
}
-- RENDEZVOUS_GRANT status: 0 grants, anything else is the refusal reason.
grant_status = {
  [0] = "granted", [1] = "unknown-parent", [2] = "not-a-member",
  [3] = "pool-exhausted", [4] = "agent-refused", [5] = "agent-unreachable",
  [6] = "bad-request", [7] = "lifetime-too-long", [8] = "unauthorized",
  [9] = "internal", [10] = "table-full", [11] = "quota-exceeded",
}
release_status = { [0] = "released", [1] = "unknown-lease" }
member_forms = { [1] = "list", [2] = "bitmap" }
member_types = { [1] = "mac", [2] = "ipv6", [3] = "ipv4" }
batch_ops = { [1] = "set", [2] = "clear" }
chunk_kinds = { [0] = "data", [1] = "manifest" }
bid_status = { [0] = "bid", [1] = "already-stored", [2] = "not-now" }
not_now_reasons = { [0] = "none", [1] = "busy", [2] = "full", [3] = "too-large" }
ack_status = { [0] = "stored", [1] = "hash-mismatch", [2] = "store-failed",
  [3] = "busy", [4] = "full", [5] = "too-large" }
offer_status = { [0] = "have", [1] = "corrupt" }

----------------------------------------------------------------------------
-- Fields
----------------------------------------------------------------------------

F = {}
function uint(width, name, label, names, b)
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
uint(16, "payload_len", "Payload length")
uint(8, "key_count", "Key count")
F.wrapped_key = ProtoField.bytes("subcast.wrapped_key", "Wrapped transfer key")
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

field_list = {}
for _, v in pairs(F) do field_list[#field_list + 1] = v end
subcast.fields = field_list

E = {
  malformed = ProtoExpert.new("subcast.malformed", "Malformed subcast datagram",
    expert.group.MALFORMED, expert.severity.ERROR),
  internal = ProtoExpert.new("subcast.internal_error", "subcast dissector bug",
    expert.group.UNDECODED, expert.severity.ERROR),
}
subcast.experts = { E.malformed, E.internal }

pref_ports = "Ports"
subcast.prefs.ports = Pref.range(pref_ports, DEFAULT_PORTS,
  "UDP ports always decoded as subcast (elsewhere a heuristic finds datagrams "
  .. "with magic 0x5343, version 1 and a consistent body length)", 65535)
