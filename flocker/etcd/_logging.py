"""
Eliot action and message types of the etcd package.

Fields carry paths, endpoints, lease identifiers and counts, never values:
what Flocker keeps in etcd is small, but a log line per keep-alive must
stay small too.
"""

from eliot import ActionType, Field, MessageType

__all__ = [
    "ETCD_REQUEST", "ETCD_ENDPOINT_FAILED", "ETCD_WATCH",
    "ETCD_WATCH_EVENTS", "LEASE_KEEPER", "LEASE_RENEWED",
    "LEASE_RENEWAL_FAILED", "LEASE_FENCE", "LEASE_CLAIM", "LEASE_ADOPTED",
    "LEASE_RETAKE",
]

_PATH = Field.for_types(
    "path", [str], "The v3 gateway path asked, e.g. /v3/kv/put.")
_ENDPOINT = Field.for_types(
    "endpoint", [str], "The etcd client URL a request went to.")
_REASON = Field.for_types("reason", [str], "Why it failed, in one line.")
_PREFIX = Field.for_types(
    "prefix", [str], "The watched key prefix (UTF-8, undecodable bytes "
    "escaped).")
_REVISION = Field.for_types(
    "revision", [int], "A revision of the etcd store.")
_COUNT = Field.for_types("count", [int], "How many events arrived.")
_KEY = Field.for_types(
    "key", [str], "An etcd key (UTF-8, undecodable bytes escaped).")
_LEASE = Field.for_types(
    "lease", [int], "An etcd lease identifier.")
_TTL = Field.for_types("ttl", [int], "A lease's time to live, seconds.")
_SAFE_FOR = Field.for_types(
    "safe_for", [float],
    "Seconds, by the local clock, the holder may still act on the lease.")
_APPLICATION = Field.for_types(
    "application", [str], "Name of a Flocker application.")
_EPOCH = Field.for_types("epoch", [int], "An ownership epoch.")
_WON = Field.for_types("won", [bool], "Whether the claim's transaction won.")
_HELD = Field.for_types(
    "held", [bool], "Whether the node holds the application's lease again.")

ETCD_REQUEST = ActionType(
    "flocker:etcd:request", [_PATH], [_ENDPOINT],
    "One request to etcd's v3 JSON gateway (tried on each endpoint in "
    "turn until one answers).")

ETCD_ENDPOINT_FAILED = MessageType(
    "flocker:etcd:endpoint_failed", [_ENDPOINT, _REASON],
    "An etcd endpoint did not answer; the next one is tried.")

ETCD_WATCH = ActionType(
    "flocker:etcd:watch", [_PREFIX, _REVISION], [],
    "A watch of a key prefix, from its start until it is stopped or lost.")

ETCD_WATCH_EVENTS = MessageType(
    "flocker:etcd:watch_events", [_REVISION, _COUNT],
    "A watch delivered the changes of one revision.")

LEASE_KEEPER = ActionType(
    "flocker:etcd:lease_keeper", [_KEY, _LEASE, _TTL], [],
    "Holding one claim: from its grant until it is released or fenced.")

LEASE_RENEWED = MessageType(
    "flocker:etcd:lease_renewed", [_LEASE, _SAFE_FOR],
    "A keep-alive was answered; the holder may act for safe_for seconds.")

LEASE_RENEWAL_FAILED = MessageType(
    "flocker:etcd:lease_renewal_failed", [_LEASE, _REASON],
    "A keep-alive failed or got no answer.")

LEASE_FENCE = ActionType(
    "flocker:etcd:fence", [_KEY, _LEASE, _REASON], [],
    "The holder stops acting on its claim (the application is stopped) "
    "because it can no longer be sure its lease is alive.")

LEASE_CLAIM = ActionType(
    "flocker:etcd:claim", [_APPLICATION, _EPOCH], [_WON],
    "A node tries to win an application's placement key for a new epoch.")

LEASE_ADOPTED = MessageType(
    "flocker:etcd:lease_adopted", [_LEASE],
    "A lease granted earlier (before the holder's agent restarted) is held "
    "and kept alive again.")

LEASE_RETAKE = ActionType(
    "flocker:etcd:retake", [_APPLICATION, _EPOCH], [_HELD],
    "An agent that (re)started takes back the lease of an application etcd "
    "says it still runs at the current epoch (held), or stops it.")
