#!/usr/bin/env python3
"""A stand-in for the parts of Consul's HTTP API that registrar uses.

Consul cannot be installed where registrar's tests run, so this module serves
the agent, catalog, health, KV, session and status endpoints the way a single
Consul server agent (Community Edition, 1.1x) does: methods, paths, query
parameters, strict request decoding, status codes, error texts, response
shapes and the index/blocking-query headers follow Consul's documentation
and, where the documentation is silent, Consul's source.

It is a test fixture, not a Consul: see README.md beside this file for what
it deliberately leaves out. Behaviour checked only against it is not proof
of behaviour against a real Consul.

Use as a program:

    python3 consul_standin.py --port 0 [--acl-token T] [--datacenter dc1]
        [--node-name NAME] [--node-address 127.0.0.1] [--log FILE] ...

prints "listening on 127.0.0.1:PORT" once it accepts connections.

Use from Python:

    standin = start_standin(port=0, acl_token=None)
    ... standin.url, standin.agent_services(), standin.kv(), standin.requests
    standin.stop()

Python 3 standard library only.
"""

import argparse
import base64
import copy
import gzip
import hashlib
import ipaddress
import json
import random
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from collections import namedtuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STANDIN_VERSION = "1.18.1"

NS = 1
US = 1000
MS = 1000 * US
SECOND = 1000 * MS
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

SESSION_TTL_MAX = 24 * HOUR
MAX_LOCK_DELAY = 60 * SECOND
LOCK_DELAY_MIN_THRESHOLD = 1000
CHECK_BUF_SIZE = 4 * 1024
KV_MAX_VALUE_SIZE = 512 * 1024
DEFAULT_QUERY_TIME = 300.0
MAX_QUERY_TIME = 600.0
JITTER_FRACTION = 16

HEALTH_PASSING = "passing"
HEALTH_WARNING = "warning"
HEALTH_CRITICAL = "critical"
VALID_STATUSES = (HEALTH_PASSING, HEALTH_WARNING, HEALTH_CRITICAL)

SERF_CHECK_ID = "serfHealth"
CONSUL_SERVICE = "consul"

# ---------------------------------------------------------------------------
# Go time.Duration parsing and printing
# ---------------------------------------------------------------------------

_UNITS = {
    "ns": NS,
    "us": US,
    "\u00b5s": US,  # micro sign
    "\u03bcs": US,  # greek mu
    "ms": MS,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}


class DurationError(ValueError):
    pass


def _go_quote(s):
    """strconv.Quote, close enough for error messages."""
    return json.dumps(s, ensure_ascii=False)


def parse_go_duration(text):
    """time.ParseDuration: returns integer nanoseconds or raises DurationError."""
    orig = text
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise DurationError("time: invalid duration " + _go_quote(orig))
    total = 0
    while s:
        if not (s[0] == "." or s[0].isdigit()):
            raise DurationError("time: invalid duration " + _go_quote(orig))
        m = re.match(r"([0-9]*)(\.([0-9]*))?", s)
        whole, frac = m.group(1), m.group(3)
        pre = whole != ""
        post = frac is not None and frac != ""
        if not pre and not post:
            raise DurationError("time: invalid duration " + _go_quote(orig))
        s = s[m.end():]
        u = re.match(r"[^0-9.]*", s).group(0)
        if u == "":
            raise DurationError("time: missing unit in duration " + _go_quote(orig))
        if u not in _UNITS:
            raise DurationError("time: unknown unit " + _go_quote(u) + " in duration " + _go_quote(orig))
        s = s[len(u):]
        unit = _UNITS[u]
        v = int(whole or "0") * unit
        if post:
            v += (int(frac) * unit) // (10 ** len(frac))
        total += v
        if total > (1 << 63) - 1:
            raise DurationError("time: invalid duration " + _go_quote(orig))
    return -total if neg else total


def _frac_str(v, unit):
    whole, frac = divmod(v, unit)
    if frac == 0:
        return str(whole)
    digits = len(str(unit)) - 1
    return "%d.%s" % (whole, str(frac).rjust(digits, "0").rstrip("0"))


def format_go_duration(d):
    """time.Duration.String()."""
    if d == 0:
        return "0s"
    neg = d < 0
    u = -d if neg else d
    if u < SECOND:
        if u < US:
            out = "%dns" % u
        elif u < MS:
            out = _frac_str(u, US) + "\u00b5s"
        else:
            out = _frac_str(u, MS) + "ms"
    else:
        secs, frac = divmod(u, SECOND)
        out = _frac_str((secs % 60) * SECOND + frac, SECOND) + "s"
        mins = secs // 60
        if mins:
            out = "%dm" % (mins % 60) + out
            hours = mins // 60
            if hours:
                out = "%dh" % hours + out
    return ("-" if neg else "") + out


# ---------------------------------------------------------------------------
# JSON out (Go's encoding/json look) and in (strict, case-insensitive keys)
# ---------------------------------------------------------------------------


def go_json(obj, pretty=False):
    if pretty:
        text = json.dumps(obj, ensure_ascii=False, indent=4) + "\n"
    else:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return text.encode("utf-8")


def sorted_map(d):
    if d is None:
        return None
    return {k: d[k] for k in sorted(d)}


class DecodeError(Exception):
    """A request body that Consul's decoder would reject."""


class GoFloat(float):
    """A JSON number written with a fraction or exponent; keeps its literal."""

    def __new__(cls, literal):
        obj = float.__new__(cls, literal)
        obj.literal = literal
        return obj


def _reject_constant(name):
    raise ValueError("invalid constant " + name)


def parse_json_body(body):
    """json.Decoder.Decode: one value; trailing data after it is ignored."""
    text = body.decode("utf-8", errors="replace")
    s = text.lstrip(" \t\r\n")
    if not s:
        raise DecodeError("EOF")
    try:
        value, _end = json.JSONDecoder(parse_float=GoFloat, parse_constant=_reject_constant).raw_decode(s)
    except json.JSONDecodeError as e:
        if e.pos >= len(s):
            raise DecodeError("unexpected EOF")
        raise DecodeError("invalid character %s looking for beginning of value" % _go_char(s[e.pos]))
    except ValueError:
        raise DecodeError("invalid character 'N' looking for beginning of value")
    return value


def _go_char(c):
    if c == "'":
        return "'\\''"
    return "'" + c + "'"


def _json_type(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, GoFloat):
        return "number " + v.literal
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


class Field(object):
    __slots__ = ("name", "kind", "sub", "gotype")

    def __init__(self, name, kind, sub=None, gotype=None):
        self.name = name
        self.kind = kind
        self.sub = sub
        self.gotype = gotype or {
            "str": "string", "bool": "bool", "int": "int", "uint": "uint64",
            "strlist": "[]string", "strmap": "map[string]string",
            "headers": "map[string][]string", "dur": "interface {}",
            "any": "interface {}", "obj": "struct",
        }.get(kind, "struct")


class Struct(object):
    """A Go struct as seen by encoding/json: exact key match first, then a
    case-insensitive one; unknown keys are an error when strict (Consul's
    lib.DecodeJSON uses DisallowUnknownFields) and ignored otherwise."""

    def __init__(self, goname, fields, strict=True):
        self.goname = goname
        self.fields = fields
        self.strict = strict
        self.exact = {f.name: f for f in fields}
        self.folded = {}
        for f in fields:
            self.folded.setdefault(f.name.lower(), f)

    def decode(self, obj):
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise DecodeError("json: cannot unmarshal %s into Go value of type %s" % (_json_type(obj), self.goname))
        out = {}
        for key, value in obj.items():
            f = self.exact.get(key) or self.folded.get(key.lower())
            if f is None:
                if self.strict:
                    raise DecodeError('json: unknown field "%s"' % key)
                continue
            out[f.name] = _decode_value(self, f, value)
        return out


def _type_error(st, f, value, gotype=None):
    return DecodeError("json: cannot unmarshal %s into Go struct field %s.%s of type %s"
                       % (_json_type(value), st.goname, f.name, gotype or f.gotype))


def _decode_value(st, f, v):
    k = f.kind
    if v is None:
        return None
    if k == "any":
        return v
    if k == "str":
        if not isinstance(v, str):
            raise _type_error(st, f, v)
        return v
    if k == "bool":
        if not isinstance(v, bool):
            raise _type_error(st, f, v)
        return v
    if k in ("int", "uint"):
        if isinstance(v, bool) or not isinstance(v, int) or isinstance(v, GoFloat):
            raise _type_error(st, f, v)
        if k == "uint" and v < 0:
            raise _type_error(st, f, v)
        return v
    if k == "strlist":
        if not isinstance(v, list):
            raise _type_error(st, f, v)
        for item in v:
            if item is not None and not isinstance(item, str):
                raise _type_error(st, f, item, "string")
        return [item or "" for item in v]
    if k == "strmap":
        if not isinstance(v, dict):
            raise _type_error(st, f, v)
        for item in v.values():
            if item is not None and not isinstance(item, str):
                raise _type_error(st, f, item, "string")
        return {a: (b or "") for a, b in v.items()}
    if k == "headers":
        if not isinstance(v, dict):
            raise _type_error(st, f, v)
        out = {}
        for a, b in v.items():
            if b is None:
                out[a] = None
                continue
            if not isinstance(b, list) or any(x is not None and not isinstance(x, str) for x in b):
                raise _type_error(st, f, b, "[]string")
            out[a] = [x or "" for x in b]
        return out
    if k == "dur":
        # interface{} fixed up by Consul's UnmarshalJSON: a string goes through
        # time.ParseDuration, a number is nanoseconds, anything else is ignored.
        if isinstance(v, str):
            try:
                return parse_go_duration(v)
            except DurationError as e:
                raise DecodeError(str(e))
        if isinstance(v, bool):
            return None
        if isinstance(v, (int, float)):
            return int(v)
        return None
    if k == "obj":
        if not isinstance(v, dict):
            raise _type_error(st, f, v)
        return v
    if k == "struct":
        if not isinstance(v, dict):
            raise _type_error(st, f, v, f.sub.goname)
        return f.sub.decode(v)
    if k == "structlist":
        if not isinstance(v, list):
            raise _type_error(st, f, v, "[]" + f.sub.goname)
        return [f.sub.decode(item) for item in v]
    if k == "structmap":
        if not isinstance(v, dict):
            raise _type_error(st, f, v, "map[string]" + f.sub.goname)
        return {a: f.sub.decode(b) for a, b in v.items()}
    raise AssertionError(k)


def F(name, kind, sub=None, gotype=None):
    return Field(name, kind, sub, gotype)


SERVICE_ADDRESS = Struct("structs.ServiceAddress", [F("Address", "str"), F("Port", "int")])
WEIGHTS = Struct("structs.Weights", [F("Passing", "int"), F("Warning", "int")])
LOCALITY = Struct("structs.Locality", [F("Region", "str"), F("Zone", "str")])

# structs.CheckType with the aux fields of its UnmarshalJSON (snake_case
# aliases, "args", interface{} durations, ignored ServiceID).
CHECK_TYPE = Struct("structs.CheckType", [
    F("Interval", "dur"), F("Timeout", "dur"), F("TTL", "dur"),
    F("DeregisterCriticalServiceAfter", "dur"),
    F("args", "strlist"), F("script_args", "strlist"),
    F("deregister_critical_service_after", "dur"),
    F("docker_container_id", "str"), F("tls_server_name", "str"),
    F("tls_skip_verify", "bool"), F("grpc_use_tls", "bool"), F("h2ping_use_tls", "bool"),
    F("ServiceID", "str"), F("service_id", "str"),
    F("CheckID", "str"), F("Name", "str"), F("Status", "str"), F("Notes", "str"),
    F("ScriptArgs", "strlist"), F("HTTP", "str"), F("H2PING", "str"), F("H2PingUseTLS", "bool"),
    F("Header", "headers"), F("Method", "str"), F("Body", "str"), F("DisableRedirects", "bool"),
    F("TCP", "str"), F("UDP", "str"), F("AliasNode", "str"), F("AliasService", "str"),
    F("DockerContainerID", "str"), F("Shell", "str"), F("GRPC", "str"), F("GRPCUseTLS", "bool"),
    F("OSService", "str"), F("TLSServerName", "str"), F("TLSSkipVerify", "bool"),
    F("SuccessBeforePassing", "int"), F("FailuresBeforeWarning", "int"),
    F("FailuresBeforeCritical", "int"), F("ProxyHTTP", "str"), F("ProxyGRPC", "str"),
    F("OutputMaxSize", "int"),
])

# structs.ServiceDefinition (agent/service/register), CE build: no Namespace
# or Partition fields.
SERVICE_DEFINITION = Struct("structs.ServiceDefinition", [
    F("enable_tag_override", "bool"), F("tagged_addresses", "structmap", SERVICE_ADDRESS),
    F("Kind", "str"), F("ID", "str"), F("Name", "str"), F("Tags", "strlist"),
    F("Address", "str"), F("TaggedAddresses", "structmap", SERVICE_ADDRESS),
    F("Meta", "strmap"), F("Port", "int"), F("SocketPath", "str"),
    F("Check", "struct", CHECK_TYPE), F("Checks", "structlist", CHECK_TYPE),
    F("Weights", "struct", WEIGHTS), F("Token", "str"), F("EnableTagOverride", "bool"),
    F("Locality", "struct", LOCALITY), F("Proxy", "obj"), F("Connect", "obj"),
])

CHECK_UPDATE = Struct("agent.checkUpdate", [F("Status", "str"), F("Output", "str")])

NODE_SERVICE = Struct("structs.NodeService", [
    F("Kind", "str"), F("ID", "str"), F("Service", "str"), F("Tags", "strlist"),
    F("Address", "str"), F("TaggedAddresses", "structmap", SERVICE_ADDRESS),
    F("Meta", "strmap"), F("Port", "int"), F("SocketPath", "str"),
    F("Weights", "struct", WEIGHTS), F("EnableTagOverride", "bool"),
    F("Locality", "struct", LOCALITY), F("Proxy", "obj"), F("Connect", "obj"),
    F("PeerName", "str"), F("CreateIndex", "uint"), F("ModifyIndex", "uint"),
])

# structs.HealthCheckDefinition has its own, non-strict, UnmarshalJSON.
HEALTH_CHECK_DEFINITION = Struct("structs.HealthCheckDefinition", [
    F("HTTP", "str"), F("TLSServerName", "str"), F("TLSSkipVerify", "bool"),
    F("Header", "headers"), F("Method", "str"), F("Body", "str"),
    F("DisableRedirects", "bool"), F("TCP", "str"), F("UDP", "str"), F("H2PING", "str"),
    F("OSService", "str"), F("H2PingUseTLS", "bool"), F("Interval", "dur"),
    F("OutputMaxSize", "uint"), F("Timeout", "dur"), F("DeregisterCriticalServiceAfter", "dur"),
    F("ScriptArgs", "strlist"), F("DockerContainerID", "str"), F("Shell", "str"),
    F("GRPC", "str"), F("GRPCUseTLS", "bool"), F("AliasNode", "str"),
    F("AliasService", "str"), F("TTL", "dur"),
], strict=False)

HEALTH_CHECK = Struct("structs.HealthCheck", [
    F("Node", "str"), F("CheckID", "str"), F("Name", "str"), F("Status", "str"),
    F("Notes", "str"), F("Output", "str"), F("ServiceID", "str"), F("ServiceName", "str"),
    F("ServiceTags", "strlist"), F("Type", "str"), F("Interval", "str"), F("Timeout", "str"),
    F("ExposedPort", "int"), F("PeerName", "str"),
    F("Definition", "struct", HEALTH_CHECK_DEFINITION),
    F("CreateIndex", "uint"), F("ModifyIndex", "uint"),
])

REGISTER_REQUEST = Struct("structs.RegisterRequest", [
    F("Datacenter", "str"), F("ID", "str"), F("Node", "str"), F("Address", "str"),
    F("TaggedAddresses", "strmap"), F("NodeMeta", "strmap"),
    F("Service", "struct", NODE_SERVICE), F("Check", "struct", HEALTH_CHECK),
    F("Checks", "structlist", HEALTH_CHECK), F("Locality", "struct", LOCALITY),
    F("SkipNodeUpdate", "bool"), F("PeerName", "str"), F("Token", "str"),
    F("CreateIndex", "uint"), F("ModifyIndex", "uint"),
])

DEREGISTER_REQUEST = Struct("structs.DeregisterRequest", [
    F("Address", "str"), F("Datacenter", "str"), F("Node", "str"), F("ServiceID", "str"),
    F("CheckID", "str"), F("PeerName", "str"), F("Token", "str"),
])

SERVICE_CHECK = Struct("structs.ServiceCheck", [F("ID", "str"), F("Namespace", "str")], strict=False)

# structs.Session.UnmarshalJSON uses plain json.Unmarshal: unknown fields are
# ignored (types are still checked).
SESSION = Struct("structs.Session", [
    F("ID", "str"), F("Name", "str"), F("Node", "str"), F("LockDelay", "dur"),
    F("Behavior", "str"), F("TTL", "str"), F("NodeChecks", "strlist"),
    F("ServiceChecks", "structlist", SERVICE_CHECK), F("Checks", "strlist"),
    F("CreateIndex", "uint"), F("ModifyIndex", "uint"),
], strict=False)

# ---------------------------------------------------------------------------
# Errors that become HTTP responses
# ---------------------------------------------------------------------------


class HTTPError(Exception):
    def __init__(self, status, reason):
        Exception.__init__(self, reason)
        self.status = status
        self.reason = reason


class InternalError(HTTPError):
    """A plain Go error returned by an RPC: Consul answers 500 with its text."""

    def __init__(self, reason):
        HTTPError.__init__(self, 500, reason)


class PermissionDenied(HTTPError):
    def __init__(self, resource, level, name=None):
        msg = "Permission denied: anonymous token lacks permission '%s:%s'" % (resource, level)
        if name:
            msg += ' on "%s"' % name
        msg += ". The anonymous token is used implicitly when a request does not specify a token."
        HTTPError.__init__(self, 403, msg)


class ACLNotFound(HTTPError):
    def __init__(self):
        HTTPError.__init__(self, 403, "ACL not found")


class MethodNotAllowed(HTTPError):
    def __init__(self, method, allow):
        HTTPError.__init__(self, 405, "method %s not allowed" % method)
        self.allow = allow


class StoreError(Exception):
    pass


NO_DC_PATH = "No path to datacenter"

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _is_any_addr(addr):
    return addr in ("0.0.0.0", "::", "[::]")


_META_KEY_RE = re.compile(r"^[a-zA-Z0-9_-]+$")


def _validate_meta(meta):
    if not meta:
        return None
    if len(meta) > 64:
        return "Node metadata cannot contain more than 64 key/value pairs"
    for key in sorted(meta):
        value = meta[key]
        err = None
        if key == "":
            err = "Key cannot be blank"
        elif not _META_KEY_RE.match(key):
            err = "Key contains invalid characters"
        elif len(key) > 128:
            err = "Key is too long (limit: 128 characters)"
        elif key.startswith("consul-"):
            err = "Key prefix 'consul-' is reserved for internal use"
        elif len(value) > 512:
            err = "Value is too long (limit: 512 characters)"
        if err:
            return "Couldn't load metadata pair ('%s', '%s'): %s" % (key, value, err)
    return None


def _parse_uuid(s):
    if len(s) != 36:
        return "uuid string is wrong length"
    if not re.match(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", s):
        return "uuid is improperly formatted"
    return None


def _ip_version(addr):
    try:
        return ipaddress.ip_address(addr).version
    except ValueError:
        return None


def _go_path_clean(p):
    """path.Clean for a rooted path."""
    parts = []
    for seg in p.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(seg)
    return "/" + "/".join(parts)


def _clean_request_path(p):
    """net/http.ServeMux cleanPath."""
    if p == "":
        return "/"
    if p[0] != "/":
        p = "/" + p
    np = _go_path_clean(p)
    if p[-1] == "/" and np != "/":
        np += "/"
    return np


def _canonical_header(name):
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _go_values_encode(query):
    """url.Values.Encode: sorted by key."""
    parts = []
    for key in sorted(query):
        for v in query[key]:
            parts.append(urllib.parse.quote_plus(key, safe="") + "=" + urllib.parse.quote_plus(v, safe=""))
    return "&".join(parts)


def _new_uuid():
    return str(uuid.uuid4())


# ---------------------------------------------------------------------------
# ?filter: the boolean expression language of Consul's filtering docs
# (/api-docs/features/filtering), over the JSON an endpoint answers with
# ---------------------------------------------------------------------------

# The selectors each filtering endpoint documents ("<any>" stands for any
# map key).  A selector not listed for the endpoint is refused.
_PROXY_SELECTORS = [
    "DestinationServiceID", "DestinationServiceName", "LocalServiceAddress", "LocalServicePort",
    "Mode", "TransparentProxy.OutboundListenerPort", "MeshGateway.Mode", "Upstreams",
    "Upstreams.Datacenter", "Upstreams.DestinationName", "Upstreams.DestinationNamespace",
    "Upstreams.DestinationType", "Upstreams.LocalBindAddress", "Upstreams.LocalBindPort",
    "Upstreams.MeshGateway.Mode",
]
# /v1/agent/services (each value of the map), and the Service of
# /v1/health/service entries
AGENT_SERVICE_SELECTORS = [
    "Address", "Connect.Native", "EnableTagOverride", "ID", "Kind", "Meta", "Meta.<any>", "Port",
    "Service", "TaggedAddresses", "TaggedAddresses.<any>.Address", "TaggedAddresses.<any>.Port",
    "Tags", "Weights.Passing", "Weights.Warning",
] + ["Proxy." + p for p in _PROXY_SELECTORS]
# /v1/catalog/service/:service
CATALOG_SERVICE_SELECTORS = [
    "Address", "Datacenter", "ID", "Node", "NodeMeta.<any>", "NodeMeta", "ServiceAddress",
    "ServiceConnect.Native", "ServiceEnableTagOverride", "ServiceID", "ServiceKind", "ServiceMeta.<any>",
    "ServiceMeta", "ServiceName", "ServicePort", "ServiceTaggedAddresses.<any>.Address",
    "ServiceTaggedAddresses.<any>.Port", "ServiceTaggedAddresses", "ServiceTags", "ServiceWeights.Passing",
    "ServiceWeights.Warning", "TaggedAddresses.<any>", "TaggedAddresses",
] + ["ServiceProxy." + p for p in _PROXY_SELECTORS]
# /v1/catalog/nodes
CATALOG_NODE_SELECTORS = ["Address", "Datacenter", "ID", "Meta", "Meta.<any>", "Node", "TaggedAddresses",
                          "TaggedAddresses.<any>"]
# /v1/health/node/:node, /v1/health/checks/:service, /v1/health/state/:state
HEALTH_CHECK_SELECTORS = ["CheckID", "Name", "Node", "Notes", "Output", "ServiceID", "ServiceName",
                          "ServiceTags", "Status"]
# /v1/health/service/:service
HEALTH_SERVICE_SELECTORS = (
    ["Checks"] + ["Checks." + s for s in HEALTH_CHECK_SELECTORS]
    + ["Node.Address", "Node.Datacenter", "Node.ID", "Node.Meta", "Node.Meta.<any>", "Node.Node",
       "Node.TaggedAddresses", "Node.TaggedAddresses.<any>"]
    + ["Service." + s for s in AGENT_SERVICE_SELECTORS])


class FilterError(ValueError):
    pass


_FILTER_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
  | (?P<op>==|!=|\(|\)|\[|\]|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.X)

_KEYWORDS = ("and", "or", "not", "is", "empty", "in", "contains", "matches")


def _filter_tokens(text):
    pos, out = 0, []
    while pos < len(text):
        m = _FILTER_TOKEN.match(text, pos)
        if m is None:
            raise FilterError("1:%d (%d): no match found: unexpected %r" % (pos + 1, pos, text[pos]))
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        value = m.group(kind)
        if kind == "string":
            value = json.loads(value) if value[0] == '"' else value[1:-1]
        elif kind == "ident" and value in _KEYWORDS:
            kind = "kw"
        out.append((kind, value, m.start()))
    out.append(("end", None, len(text)))
    return out


class _FilterParser(object):
    """expr := or; or := and {"or" and}; and := not {"and" not};
    not := "not" not | "(" expr ")" | match.  A match is one of
    S == V, S != V, S is [not] empty, V [not] in S, S [not] contains V,
    S [not] matches V, where S is a selector (Name, Name.Sub, Name["key"])
    and V a quoted string, a number or a bare word."""

    def __init__(self, text):
        self.toks = _filter_tokens(text)
        self.i = 0

    def peek(self, k=0):
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self, kind=None, value=None):
        tok = self.peek()
        if (kind and tok[0] != kind) or (value is not None and tok[1] != value):
            raise FilterError("1:%d (%d): no match found, expected %s" % (tok[2] + 1, tok[2], value or kind))
        self.i += 1
        return tok

    def parse(self):
        node = self.or_()
        if self.peek()[0] != "end":
            self.take("end")
        return node

    def or_(self):
        node = self.and_()
        while self.peek() == ("kw", "or", self.peek()[2]):
            self.i += 1
            node = ("or", node, self.and_())
        return node

    def and_(self):
        node = self.not_()
        while self.peek() == ("kw", "and", self.peek()[2]):
            self.i += 1
            node = ("and", node, self.not_())
        return node

    def not_(self):
        tok = self.peek()
        if tok[0] == "kw" and tok[1] == "not" and self.peek(1)[0] != "kw":
            self.i += 1
            return ("not", self.not_())
        if tok[0] == "op" and tok[1] == "(":
            self.i += 1
            node = self.or_()
            self.take("op", ")")
            return node
        return self.match()

    def value(self):
        tok = self.peek()
        if tok[0] in ("string", "number", "ident"):
            self.i += 1
            return tok[1]
        raise FilterError("1:%d (%d): no match found, expected a value" % (tok[2] + 1, tok[2]))

    def selector(self):
        path = [self.take("ident")[1]]
        while True:
            tok = self.peek()
            if tok[:2] == ("op", "."):
                self.i += 1
                path.append(self.take("ident")[1])
            elif tok[:2] == ("op", "["):
                self.i += 1
                path.append(self.take("string")[1])
                self.take("op", "]")
            else:
                return tuple(path)

    def match(self):
        tok, nxt = self.peek(), self.peek(1)
        # V [not] in S: a value first
        value_first = nxt[:2] == ("kw", "in") or (nxt[:2] == ("kw", "not") and self.peek(2)[:2] == ("kw", "in"))
        if tok[0] in ("string", "number") or (tok[0] == "ident" and value_first):
            value = self.value()
            negate = False
            if self.peek()[:2] == ("kw", "not"):
                self.i += 1
                negate = True
            self.take("kw", "in")
            return ("match", "in", self.selector(), value, negate)
        sel = self.selector()
        tok = self.peek()
        if tok[:2] in (("op", "=="), ("op", "!=")):
            self.i += 1
            return ("match", "==", sel, self.value(), tok[1] == "!=")
        if tok[:2] == ("kw", "is"):
            self.i += 1
            negate = self.peek()[:2] == ("kw", "not")
            if negate:
                self.i += 1
            self.take("kw", "empty")
            return ("match", "empty", sel, None, negate)
        negate = tok[:2] == ("kw", "not")
        if negate:
            self.i += 1
            tok = self.peek()
        if tok[:2] in (("kw", "contains"), ("kw", "matches")):
            self.i += 1
            value = self.value()
            if tok[1] == "matches":
                try:
                    re.compile(value)
                except re.error as e:
                    raise FilterError("Invalid regular expression %s: %s" % (_go_quote(value), e))
            return ("match", "in" if tok[1] == "contains" else "matches", sel, value, negate)
        raise FilterError("1:%d (%d): no match found, expected: \"!=\", \"==\", \"contains\", \"is\", "
                          "\"matches\", \"not\"" % (tok[2] + 1, tok[2]))


def _selector_allowed(sel, allowed):
    for pattern in allowed:
        parts = pattern.split(".")
        if len(parts) == len(sel) and all(p == "<any>" or p == s for p, s in zip(parts, sel)):
            return True
    return False


def _check_selectors(node, allowed):
    if node[0] in ("and", "or"):
        _check_selectors(node[1], allowed)
        _check_selectors(node[2], allowed)
    elif node[0] == "not":
        _check_selectors(node[1], allowed)
    elif not _selector_allowed(node[2], allowed):
        raise FilterError('Selector "%s" is not valid' % ".".join(node[2]))


def compile_filter(text, allowed):
    """A filter for one endpoint's documented selectors; FilterError (which
    the endpoints answer with 400) for what Consul could not evaluate."""
    try:
        node = _FilterParser(text).parse()
        _check_selectors(node, allowed)
    except FilterError as e:
        raise FilterError("Failed to create boolean expression evaluator: %s" % e)
    return lambda obj: _evaluate(node, obj)


def _select(obj, path):
    """The values a selector reaches; through a list, one per element."""
    values = [obj]
    for key in path:
        nxt = []
        for v in values:
            items = v if isinstance(v, list) else [v]
            for item in items:
                if isinstance(item, dict) and key in item:
                    nxt.append(item[key])
        values = nxt
    return values


def _coerce(value, like):
    if isinstance(like, bool):
        return {"true": True, "false": False}.get(str(value).lower())
    if isinstance(like, int):
        try:
            return int(value)
        except ValueError:
            return None
    return str(value)


def _match_one(op, found, value):
    if op == "empty":
        return found is None or (isinstance(found, (list, dict, str)) and len(found) == 0)
    if op == "in":
        if isinstance(found, list):
            return any(_coerce(value, x) == x for x in found)
        if isinstance(found, dict):
            return str(value) in found
        return isinstance(found, str) and str(value) in found
    if op == "matches":
        return isinstance(found, str) and re.search(str(value), found) is not None
    return found is not None and not isinstance(found, (list, dict)) and _coerce(value, found) == found


def _evaluate(node, obj):
    kind = node[0]
    if kind == "and":
        return _evaluate(node[1], obj) and _evaluate(node[2], obj)
    if kind == "or":
        return _evaluate(node[1], obj) or _evaluate(node[2], obj)
    if kind == "not":
        return not _evaluate(node[1], obj)
    # Through a list the match holds if it holds for any element (so
    # Checks.Status != "passing": some check is not passing).  A selector
    # that reaches nothing (a missing map key) is empty and equals nothing.
    _m, op, sel, value, negate = node
    found = _select(obj, sel)
    if not found:
        return (op == "empty") != negate
    return any(_match_one(op, f, value) != negate for f in found)


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------


class Datacenter(object):
    def __init__(self, name):
        self.name = name
        self.nodes = {}       # lower(node) -> node json
        self.services = {}    # lower(node) -> {lower(service id): NodeService json}
        self.checks = {}      # lower(node) -> {lower(check id): HealthCheck json}
        self.tables = {"nodes": 0, "services": 0, "checks": 0, "kvs": 0,
                       "tombstones": 0, "sessions": 0}
        self.service_index = {}   # lower(service name) -> index
        self.service_extinction = 0
        self.kv = {}          # key -> entry (Value is bytes or None)
        self.tombstones = {}  # key -> index of deletion
        self.sessions = {}    # id -> session json (+ "_deadline")
        self.lock_delay = {}  # key -> monotonic expiry


def _empty_proxy():
    return {"Mode": "", "MeshGateway": {}, "Expose": {}}


class Store(object):
    """Everything the stand-in knows. All access holds self.lock."""

    def __init__(self, datacenter, node_name, node_address, acl_token, extra_datacenters,
                 session_ttl_min, session_ttl_multiplier, check_deregister_interval_min,
                 check_reap_interval, enable_script_checks, version, register_consul_service):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.closing = False
        self.raft_index = 0
        self.datacenter = datacenter
        self.node_name = node_name
        self.node_address = node_address
        self.node_id = _new_uuid()
        self.acl_token = acl_token
        self.session_ttl_min = int(session_ttl_min * SECOND)
        self.session_ttl_multiplier = session_ttl_multiplier
        self.check_deregister_interval_min = int(check_deregister_interval_min * SECOND)
        self.check_reap_interval = check_reap_interval
        self.enable_script_checks = enable_script_checks
        self.version = version
        self.register_consul_service = register_consul_service
        self.dcs = {datacenter: Datacenter(datacenter)}
        for dc in extra_datacenters:
            self.dcs.setdefault(dc, Datacenter(dc))
        self.agent_services = {}  # service id -> service record
        self.agent_checks = {}    # check id -> check record
        self.next_reap = time.monotonic() + check_reap_interval
        self._bootstrap()

    # -- indexes -----------------------------------------------------------

    def next_index(self):
        self.raft_index += 1
        return self.raft_index

    def notify(self):
        self.cond.notify_all()

    def dc(self, name):
        dc = self.dcs.get(name)
        if dc is None:
            raise InternalError(NO_DC_PATH)
        return dc

    # -- bootstrap -----------------------------------------------------------

    def agent_node_json(self):
        addr = self.node_address
        tagged = {"lan": addr, "wan": addr}
        v = _ip_version(addr)
        if v == 4:
            tagged.update({"lan_ipv4": addr, "wan_ipv4": addr})
        elif v == 6:
            tagged.update({"lan_ipv6": addr, "wan_ipv6": addr})
        return {
            "ID": self.node_id, "Node": self.node_name, "Address": addr,
            "Datacenter": self.datacenter, "TaggedAddresses": sorted_map(tagged),
            "Meta": {"consul-network-segment": "", "consul-version": self.version},
        }

    def _bootstrap(self):
        dc = self.dcs[self.datacenter]
        idx = self.next_index()
        self._ensure_node(dc, self.agent_node_json(), idx)
        idx = self.next_index()
        self._ensure_check(dc, {
            "Node": self.node_name, "CheckID": SERF_CHECK_ID, "Name": "Serf Health Status",
            "Status": HEALTH_PASSING, "Notes": "", "Output": "Agent alive and reachable",
            "ServiceID": "", "ServiceName": "", "ServiceTags": [], "Type": "",
            "Interval": "", "Timeout": "", "ExposedPort": 0, "Definition": {},
        }, idx)
        if self.register_consul_service:
            idx = self.next_index()
            self._ensure_service(dc, self.node_name, {
                "ID": CONSUL_SERVICE, "Service": CONSUL_SERVICE, "Tags": [], "Address": "",
                "Meta": {"non_voter": "false", "raft_version": "3", "read_replica": "false",
                         "serf_protocol_current": "2", "serf_protocol_max": "5",
                         "serf_protocol_min": "1", "version": self.version},
                "Port": 8300, "Weights": {"Passing": 1, "Warning": 1},
                "EnableTagOverride": False,
            }, idx)
        for name, other in self.dcs.items():
            if name != self.datacenter:
                for t in other.tables:
                    other.tables[t] = self.raft_index

    # -- ACL -----------------------------------------------------------------

    def acl_enabled(self):
        return self.acl_token is not None

    def resolve(self, token):
        """Returns True for full access, False for the anonymous token (deny
        everything: default policy deny), raises ACLNotFound for other tokens."""
        if not self.acl_enabled():
            return True
        if token == "":
            return False
        if token == self.acl_token:
            return True
        raise ACLNotFound()

    # -- catalog primitives ----------------------------------------------------

    @staticmethod
    def _node_same(a, b):
        keys = ("ID", "Address", "Datacenter", "TaggedAddresses", "Meta")
        return a["Node"].lower() == b["Node"].lower() and all(a.get(k) == b.get(k) for k in keys)

    def _bump_services_of_node(self, dc, lnode, idx):
        for svc in dc.services.get(lnode, {}).values():
            dc.service_index[svc["Service"].lower()] = idx

    def _ensure_node(self, dc, node, idx):
        lnode = node["Node"].lower()
        existing = dc.nodes.get(lnode)
        if existing is not None and self._node_same(existing, node):
            return
        rec = {
            "ID": node.get("ID") or "", "Node": node["Node"], "Address": node.get("Address") or "",
            "Datacenter": dc.name, "TaggedAddresses": sorted_map(node.get("TaggedAddresses")),
            "Meta": sorted_map(node.get("Meta")),
            "CreateIndex": existing["CreateIndex"] if existing else idx, "ModifyIndex": idx,
        }
        if node.get("Locality"):
            rec["Locality"] = node["Locality"]
        dc.nodes[lnode] = rec
        dc.services.setdefault(lnode, {})
        dc.checks.setdefault(lnode, {})
        dc.tables["nodes"] = idx
        self._bump_services_of_node(dc, lnode, idx)

    @staticmethod
    def _service_same(a, b):
        keys = ("Kind", "ID", "Service", "Tags", "Address", "TaggedAddresses", "Meta", "Port",
                "SocketPath", "Weights", "EnableTagOverride", "Locality", "Proxy", "Connect")
        return all(a.get(k) == b.get(k) for k in keys)

    def _ensure_service(self, dc, node_name, svc, idx):
        lnode = node_name.lower()
        weights = {"Passing": 1, "Warning": 1}
        w = svc.get("Weights")
        if w and (w.get("Passing") or 0) >= 1 and (w.get("Warning") or 0) >= 0 \
                and (w.get("Passing") or 0) <= 65535 and (w.get("Warning") or 0) <= 65535:
            weights = {"Passing": w.get("Passing") or 0, "Warning": w.get("Warning") or 0}
        rec = {
            "Kind": svc.get("Kind") or "", "ID": svc["ID"], "Service": svc["Service"],
            "Tags": list(svc["Tags"]) if svc.get("Tags") is not None else None,
            "Address": svc.get("Address") or "",
            "TaggedAddresses": sorted_map(svc.get("TaggedAddresses")) or None,
            "Meta": sorted_map(svc.get("Meta")), "Port": svc.get("Port") or 0,
            "SocketPath": svc.get("SocketPath") or "", "Weights": weights,
            "EnableTagOverride": bool(svc.get("EnableTagOverride")),
            "Locality": svc.get("Locality"),
            "Proxy": svc.get("Proxy") or _empty_proxy(), "Connect": svc.get("Connect") or {},
            "PeerName": "",
        }
        existing = dc.services[lnode].get(svc["ID"].lower())
        if existing is not None and self._service_same(existing, rec):
            return
        rec["CreateIndex"] = existing["CreateIndex"] if existing else idx
        rec["ModifyIndex"] = idx
        dc.services[lnode][svc["ID"].lower()] = rec
        dc.tables["services"] = idx
        dc.service_index[rec["Service"].lower()] = idx
        if existing is not None and existing["Service"].lower() != rec["Service"].lower():
            self._service_gone(dc, existing["Service"], idx)

    def _service_gone(self, dc, name, idx):
        lname = name.lower()
        for svcs in dc.services.values():
            for s in svcs.values():
                if s["Service"].lower() == lname:
                    dc.service_index[lname] = idx
                    return
        dc.service_index.pop(lname, None)
        dc.service_extinction = idx

    @staticmethod
    def _check_same(a, b):
        keys = ("CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName",
                "ServiceTags", "Definition")
        return a["Node"].lower() == b["Node"].lower() and all(a.get(k) == b.get(k) for k in keys)

    def _validate_check(self, dc, chk, planned_services=()):
        lnode = chk["Node"].lower()
        if lnode not in dc.nodes and lnode not in [p[0] for p in planned_services]:
            raise StoreError("Missing node registration")
        sid = chk.get("ServiceID") or ""
        if sid and sid.lower() not in dc.services.get(lnode, {}) \
                and (lnode, sid.lower()) not in planned_services:
            raise StoreError("Missing service registration")

    def _ensure_check(self, dc, chk, idx):
        lnode = chk["Node"].lower()
        self._validate_check(dc, chk)
        rec = {
            "Node": dc.nodes[lnode]["Node"], "CheckID": chk["CheckID"], "Name": chk.get("Name") or "",
            "Status": chk.get("Status") or HEALTH_CRITICAL, "Notes": chk.get("Notes") or "",
            "Output": chk.get("Output") or "", "ServiceID": chk.get("ServiceID") or "",
            "ServiceName": chk.get("ServiceName") or "",
            "ServiceTags": chk.get("ServiceTags"), "Type": chk.get("Type") or "",
            "Interval": chk.get("Interval") or "", "Timeout": chk.get("Timeout") or "",
            "ExposedPort": chk.get("ExposedPort") or 0,
            "Definition": chk.get("Definition") or {},
        }
        if rec["ServiceID"]:
            svc = dc.services[lnode][rec["ServiceID"].lower()]
            rec["ServiceName"] = svc["Service"]
            rec["ServiceTags"] = svc["Tags"]
        existing = dc.checks[lnode].get(rec["CheckID"].lower())
        if existing is not None and self._check_same(existing, rec):
            return
        rec["CreateIndex"] = existing["CreateIndex"] if existing else idx
        rec["ModifyIndex"] = idx
        dc.checks[lnode][rec["CheckID"].lower()] = rec
        dc.tables["checks"] = idx
        if rec["ServiceID"]:
            dc.service_index[rec["ServiceName"].lower()] = idx
        else:
            self._bump_services_of_node(dc, lnode, idx)
        if rec["Status"] == HEALTH_CRITICAL:
            self._invalidate_sessions_for_check(dc, lnode, rec["CheckID"], idx)

    def _delete_check(self, dc, lnode, check_id, idx):
        chk = dc.checks.get(lnode, {}).pop(check_id.lower(), None)
        if chk is None:
            return
        dc.tables["checks"] = idx
        if chk["ServiceID"]:
            if chk["ServiceName"].lower() in dc.service_index:
                dc.service_index[chk["ServiceName"].lower()] = idx
        else:
            self._bump_services_of_node(dc, lnode, idx)
        self._invalidate_sessions_for_check(dc, lnode, chk["CheckID"], idx)

    def _delete_service(self, dc, lnode, service_id, idx):
        svc = dc.services.get(lnode, {}).pop(service_id.lower(), None)
        if svc is None:
            return
        for cid, chk in list(dc.checks.get(lnode, {}).items()):
            if chk["ServiceID"].lower() == service_id.lower():
                self._delete_check(dc, lnode, cid, idx)
        dc.tables["services"] = idx
        self._service_gone(dc, svc["Service"], idx)

    def _delete_node(self, dc, lnode, idx):
        if lnode not in dc.nodes:
            return
        for sid in list(dc.services.get(lnode, {})):
            self._delete_service(dc, lnode, sid, idx)
        for cid in list(dc.checks.get(lnode, {})):
            self._delete_check(dc, lnode, cid, idx)
        del dc.nodes[lnode]
        dc.services.pop(lnode, None)
        dc.checks.pop(lnode, None)
        dc.tables["nodes"] = idx
        for sid, sess in list(dc.sessions.items()):
            if sess["Node"].lower() == lnode:
                self._delete_session(dc, sid, idx)

    # -- sessions ----------------------------------------------------------------

    @staticmethod
    def session_check_ids(sess):
        ids = list(sess.get("Checks") or [])
        ids += list(sess.get("NodeChecks") or [])
        ids += [sc.get("ID") or "" for sc in (sess.get("ServiceChecks") or [])]
        return ids

    def _invalidate_sessions_for_check(self, dc, lnode, check_id, idx):
        for sid, sess in list(dc.sessions.items()):
            if sess["Node"].lower() != lnode:
                continue
            if check_id.lower() in [c.lower() for c in self.session_check_ids(sess)]:
                self._delete_session(dc, sid, idx)

    def _delete_session(self, dc, session_id, idx):
        sess = dc.sessions.pop(session_id, None)
        if sess is None:
            return
        dc.tables["sessions"] = idx
        delay = min(sess["LockDelay"], MAX_LOCK_DELAY)
        now = time.monotonic()
        for key in sorted(dc.kv):
            entry = dc.kv.get(key)
            if entry is None or entry["Session"] != session_id:
                continue
            if sess["Behavior"] == "delete":
                self._kv_delete(dc, key, idx)
            else:
                entry = dict(entry)
                entry["Session"] = ""
                entry["ModifyIndex"] = idx
                dc.kv[key] = entry
                dc.tables["kvs"] = idx
            if delay > 0:
                dc.lock_delay[key] = now + delay / SECOND

    def reset_session_timer(self, sess):
        ttl = sess["TTL"]
        if not ttl:
            sess["_deadline"] = None
            return
        d = parse_go_duration(ttl)
        sess["_deadline"] = None if d == 0 else time.monotonic() + (d / SECOND) * self.session_ttl_multiplier

    # -- KV ----------------------------------------------------------------------

    def _kv_delete(self, dc, key, idx):
        if key not in dc.kv:
            return
        del dc.kv[key]
        dc.tombstones[key] = idx
        dc.tables["kvs"] = idx
        dc.tables["tombstones"] = idx

    # -- agent -------------------------------------------------------------------

    def sync_agent_node(self):
        """Anti-entropy, done at once instead of every minute or so: make the
        catalog entries of this agent's node match the agent's local state."""
        dc = self.dcs[self.datacenter]
        lnode = self.node_name.lower()
        node = self.agent_node_json()
        if lnode not in dc.nodes or not self._node_same(dc.nodes[lnode], node):
            self._ensure_node(dc, node, self.next_index())
        remote = dc.services.get(lnode, {})
        # EnableTagOverride: tags changed in the catalog win over local tags.
        for sid, svc in self.agent_services.items():
            r = remote.get(sid.lower())
            if svc["EnableTagOverride"] and r is not None and r["Tags"] != svc["Tags"]:
                svc["Tags"] = r["Tags"]
                for chk in self.agent_checks.values():
                    if chk["ServiceID"] == sid:
                        chk["ServiceTags"] = r["Tags"]
        for lsid, r in list(remote.items()):
            if r["ID"] == CONSUL_SERVICE and self.register_consul_service:
                continue
            if not any(lsid == sid.lower() for sid in self.agent_services):
                self._delete_service(dc, lnode, lsid, self.next_index())
        for lcid, r in list(dc.checks.get(lnode, {}).items()):
            if r["CheckID"] == SERF_CHECK_ID:
                continue
            if not any(lcid == cid.lower() for cid in self.agent_checks):
                self._delete_check(dc, lnode, lcid, self.next_index())
        for sid in sorted(self.agent_services):
            svc = self.agent_services[sid]
            want = self._agent_service_as_node_service(svc)
            r = remote.get(sid.lower())
            changed_checks = [c for c in self._agent_checks_for(sid)
                              if not self._catalog_check_matches(dc, lnode, c)]
            if r is None or not self._service_same(r, self._normalized_service(want)) or changed_checks:
                idx = self.next_index()
                self._ensure_service(dc, self.node_name, want, idx)
                for c in changed_checks:
                    self._ensure_check(dc, self._agent_check_as_health_check(c), idx)
        for cid in sorted(self.agent_checks):
            c = self.agent_checks[cid]
            if c["ServiceID"] and c["ServiceID"] not in self.agent_services:
                continue
            if not self._catalog_check_matches(dc, lnode, c):
                self._ensure_check(dc, self._agent_check_as_health_check(c), self.next_index())
        self.notify()

    def _normalized_service(self, svc):
        tmp = Datacenter("tmp")
        tmp.nodes["x"] = {}
        tmp.services["x"] = {}
        self._ensure_service(tmp, "x", svc, 0)
        return tmp.services["x"][svc["ID"].lower()]

    def _agent_checks_for(self, sid):
        return [self.agent_checks[c] for c in sorted(self.agent_checks)
                if self.agent_checks[c]["ServiceID"] == sid]

    def _catalog_check_matches(self, dc, lnode, c):
        r = dc.checks.get(lnode, {}).get(c["CheckID"].lower())
        if r is None:
            return False
        want = self._agent_check_as_health_check(c)
        keys = ("CheckID", "Name", "Status", "Notes", "Output", "ServiceID")
        return all((r.get(k) or "") == (want.get(k) or "") for k in keys)

    @staticmethod
    def _agent_service_as_node_service(svc):
        return {k: copy.deepcopy(svc.get(k)) for k in (
            "Kind", "ID", "Service", "Tags", "Address", "TaggedAddresses", "Meta", "Port",
            "SocketPath", "Weights", "EnableTagOverride", "Locality", "Proxy", "Connect")}

    @staticmethod
    def _agent_check_as_health_check(c):
        return {k: copy.deepcopy(c.get(k)) for k in (
            "Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName",
            "ServiceTags", "Type", "Interval", "Timeout", "ExposedPort", "Definition")}

    def update_agent_check(self, check_id, status, output, now=None):
        """local.State.UpdateCheck: tracks when a check went critical."""
        c = self.agent_checks.get(check_id)
        if c is None:
            return
        if status == HEALTH_CRITICAL:
            if c["_critical_time"] is None:
                c["_critical_time"] = now if now is not None else time.monotonic()
        else:
            c["_critical_time"] = None
        c["Status"] = status
        c["Output"] = output

    def remove_agent_service(self, sid):
        self.agent_services.pop(sid, None)
        for cid in [cid for cid, c in self.agent_checks.items() if c["ServiceID"] == sid]:
            del self.agent_checks[cid]

    # -- time ------------------------------------------------------------------

    def tick(self):
        """Apply everything that time has made due. Called before serving each
        request and by a background thread every 50 ms."""
        now = time.monotonic()
        changed = False
        for cid in sorted(self.agent_checks):
            c = self.agent_checks[cid]
            if c["_ttl"] and c["_deadline"] is not None and c["_deadline"] <= now:
                out = "TTL expired"
                if c["_last_output"]:
                    out = "TTL expired (last output before timeout follows): " + c["_last_output"]
                expired_at = c["_deadline"]
                c["_deadline"] = None
                self.update_agent_check(cid, HEALTH_CRITICAL, out, now=expired_at)
                changed = True
        if now >= self.next_reap:
            self.next_reap = now + self.check_reap_interval
            for cid in sorted(self.agent_checks):
                c = self.agent_checks.get(cid)
                if c is None or not c["ServiceID"] or c["_critical_time"] is None:
                    continue
                if c["_reap_after"] > 0 and (now - c["_critical_time"]) * SECOND > c["_reap_after"]:
                    self.remove_agent_service(c["ServiceID"])
                    changed = True
        if changed:
            self.sync_agent_node()
        for dc in self.dcs.values():
            for sid in sorted(dc.sessions):
                sess = dc.sessions.get(sid)
                if sess is not None and sess.get("_deadline") is not None and sess["_deadline"] <= now:
                    self._delete_session(dc, sid, self.next_index())
                    changed = True
        if changed:
            self.notify()


# ---------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------

RecordedRequest = namedtuple("RecordedRequest", ["method", "path", "query", "headers", "body"])


class Request(object):
    def __init__(self, method, path, raw_query, headers, body):
        self.method = method
        self.path = path
        self.raw_query = raw_query
        self.query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        self.headers = headers
        self.body = body
        self.filter = None  # the compiled ?filter, set before the handler runs

    def has(self, name):
        return name in self.query

    def get(self, name):
        vals = self.query.get(name)
        return vals[0] if vals else ""

    def header(self, name):
        v = self.headers.get(name)
        return v if v is not None else ""

    def token(self):
        """HTTPHandlers.parseToken: ?token=, then X-Consul-Token, then
        Authorization: Bearer."""
        tok = self.get("token")
        if tok:
            return tok
        tok = self.header("X-Consul-Token")
        if tok:
            return tok
        auth = self.header("Authorization")
        if auth:
            parts = auth.split(" ")
            if len(parts) > 1 and parts[0].lower() == "bearer":
                # Bearer tokens hold no spaces: only the first word counts.
                return " ".join(parts[1:]).strip().split(" ")[0].strip()
        return ""


class Response(object):
    def __init__(self, status=200, body=None, content_type=None, headers=None):
        self.status = status
        self.body = body if body is not None else b""
        self.content_type = content_type
        self.headers = headers or {}


def json_response(obj, req, headers=None, status=200):
    return Response(status, go_json(obj, pretty=req.has("pretty")), "application/json", headers)


def text_response(status, text, headers=None):
    return Response(status, text.encode("utf-8"), "text/plain; charset=utf-8", headers)


# ---------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------


class API(object):
    """Handlers for each endpoint; each returns a Response or raises HTTPError."""

    def __init__(self, store):
        self.s = store
        self.patterns = []  # (pattern, methods, handler)
        self._register_all()

    # -- routing -------------------------------------------------------------

    def _register_all(self):
        implemented = {
            "/v1/agent/self": (["GET"], self.agent_self),
            "/v1/agent/services": (["GET"], self.agent_services),
            "/v1/agent/service/": (["GET"], self.agent_service),
            "/v1/agent/checks": (["GET"], self.agent_checks),
            "/v1/agent/service/register": (["PUT"], self.agent_service_register),
            "/v1/agent/service/deregister/": (["PUT"], self.agent_service_deregister),
            "/v1/agent/check/pass/": (["PUT"], lambda r: self.agent_check_ttl(r, "/v1/agent/check/pass/", HEALTH_PASSING)),
            "/v1/agent/check/warn/": (["PUT"], lambda r: self.agent_check_ttl(r, "/v1/agent/check/warn/", HEALTH_WARNING)),
            "/v1/agent/check/fail/": (["PUT"], lambda r: self.agent_check_ttl(r, "/v1/agent/check/fail/", HEALTH_CRITICAL)),
            "/v1/agent/check/update/": (["PUT"], self.agent_check_update),
            "/v1/catalog/register": (["PUT"], self.catalog_register),
            "/v1/catalog/deregister": (["PUT"], self.catalog_deregister),
            "/v1/catalog/datacenters": (["GET"], self.catalog_datacenters),
            "/v1/catalog/nodes": (["GET"], self.catalog_nodes),
            "/v1/catalog/services": (["GET"], self.catalog_services),
            "/v1/catalog/service/": (["GET"], self.catalog_service),
            "/v1/catalog/node/": (["GET"], self.catalog_node),
            "/v1/kv/": (["GET", "PUT", "DELETE"], self.kv),
            "/v1/session/create": (["PUT"], self.session_create),
            "/v1/session/destroy/": (["PUT"], self.session_destroy),
            "/v1/session/renew/": (["PUT"], self.session_renew),
            "/v1/session/info/": (["GET"], self.session_info),
            "/v1/session/node/": (["GET"], self.session_node),
            "/v1/session/list": (["GET"], self.session_list),
            "/v1/status/leader": (["GET"], self.status_leader),
            "/v1/status/peers": (["GET"], self.status_peers),
            "/v1/health/service/": (["GET"], self.health_service),
            "/v1/health/checks/": (["GET"], self.health_checks),
            "/v1/health/state/": (["GET"], self.health_state),
            "/v1/health/node/": (["GET"], self.health_node),
        }
        # Endpoints a real Consul has but this stand-in does not serve: they
        # keep Consul's method rules and then answer 501, so that a client
        # wandering there fails loudly instead of seeing "unknown path".
        not_implemented = {
            "/v1/acl/": ["GET", "PUT", "POST", "DELETE"],
            "/v1/agent/token/": ["PUT"], "/v1/agent/host": ["GET"], "/v1/agent/version": ["GET"],
            "/v1/agent/maintenance": ["PUT"], "/v1/agent/reload": ["PUT"],
            "/v1/agent/monitor": ["GET"], "/v1/agent/metrics": ["GET"],
            "/v1/agent/members": ["GET"], "/v1/agent/join/": ["PUT"], "/v1/agent/leave": ["PUT"],
            "/v1/agent/force-leave/": ["PUT"], "/v1/agent/health/service/id/": ["GET"],
            "/v1/agent/health/service/name/": ["GET"], "/v1/agent/check/register": ["PUT"],
            "/v1/agent/check/deregister/": ["PUT"], "/v1/agent/service/maintenance/": ["PUT"],
            "/v1/agent/connect/": ["GET", "POST"], "/v1/catalog/connect/": ["GET"],
            "/v1/catalog/node-services/": ["GET"], "/v1/catalog/gateway-services/": ["GET"],
            "/v1/config/": ["GET", "DELETE"], "/v1/config": ["PUT"], "/v1/connect/": ["GET", "PUT", "POST", "DELETE"],
            "/v1/coordinate/": ["GET", "PUT"], "/v1/event/fire/": ["PUT"], "/v1/event/list": ["GET"],
            "/v1/health/connect/": ["GET"], "/v1/health/ingress/": ["GET"],
            "/v1/operator/": ["GET", "PUT", "POST", "DELETE"], "/v1/query": ["GET", "POST"],
            "/v1/query/": [], "/v1/snapshot": ["GET", "PUT"], "/v1/txn": ["PUT"],
            "/v1/internal/": ["GET", "PUT", "POST"], "/v1/discovery-chain/": ["GET", "POST"],
            "/v1/exported-services": ["GET"], "/v1/peering/": ["GET", "DELETE"], "/v1/peerings": ["GET"],
        }
        for pattern, (methods, fn) in implemented.items():
            self.patterns.append((pattern, methods, fn))
        for pattern, methods in not_implemented.items():
            self.patterns.append((pattern, methods, self.not_implemented))
        self.patterns.sort(key=lambda p: -len(p[0]))

    def match(self, path):
        for pattern, methods, fn in self.patterns:
            if pattern.endswith("/"):
                if path.startswith(pattern):
                    return pattern, methods, fn
            elif path == pattern:
                return pattern, methods, fn
        return None

    def subtree_redirect(self, path):
        """ServeMux: "/v1/kv" redirects to "/v1/kv/" when only the subtree exists."""
        for pattern, _m, _f in self.patterns:
            if pattern == path + "/":
                return True
        return False

    # The endpoints whose ?filter the stand-in evaluates, with the selectors
    # Consul documents for each.  Anywhere else a filter is refused (400):
    # Consul filters on a few more listings, and ignores it on the rest.
    FILTERABLE = {
        "/v1/agent/services": AGENT_SERVICE_SELECTORS,
        "/v1/catalog/nodes": CATALOG_NODE_SELECTORS,
        "/v1/catalog/service/": CATALOG_SERVICE_SELECTORS,
        "/v1/health/service/": HEALTH_SERVICE_SELECTORS,
        "/v1/health/checks/": HEALTH_CHECK_SELECTORS,
        "/v1/health/state/": HEALTH_CHECK_SELECTORS,
        "/v1/health/node/": HEALTH_CHECK_SELECTORS,
    }

    def filter_for(self, pattern, req):
        """The compiled ?filter of a request to pattern, or None."""
        text = req.get("filter")
        if text == "":
            return None
        if pattern not in self.FILTERABLE:
            raise HTTPError(400, "consul stand-in: ?filter is not evaluated on %s; it is refused rather "
                                 "than ignored, so that no client relies on a filter that did nothing" % req.path)
        try:
            return compile_filter(text, self.FILTERABLE[pattern])
        except FilterError as e:
            raise HTTPError(400, str(e))

    def not_implemented(self, req):
        return text_response(501, "consul stand-in: %s is a Consul endpoint that this stand-in does not implement" % req.path)

    # -- shared parsing ------------------------------------------------------------

    def _dc(self, req):
        return req.get("dc") or self.s.datacenter

    def _parse_wait(self, req):
        """parseWait: returns (min_index, max_wait_seconds)."""
        wait = DEFAULT_QUERY_TIME
        if req.get("wait") != "":
            try:
                wait = parse_go_duration(req.get("wait")) / SECOND
            except DurationError:
                raise HTTPError(400, "Invalid wait time")
        index = 0
        if req.get("index") != "":
            try:
                index = int(req.get("index"), 10)
                if index < 0 or index >= 1 << 64 or not req.get("index").isdigit():
                    raise ValueError
            except ValueError:
                raise HTTPError(400, "Invalid index")
        if wait <= 0:
            wait = DEFAULT_QUERY_TIME
        wait = min(wait, MAX_QUERY_TIME)
        return index, wait

    def _parse_query_options(self, req):
        if req.has("stale") and req.has("consistent"):
            raise HTTPError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
        return self._parse_wait(req)

    def _consistency(self, req):
        if req.has("stale"):
            return "stale"
        if req.has("consistent"):
            return "consistent"
        return "leader"

    def _meta_headers(self, req, index):
        return {
            "X-Consul-Index": str(max(index, 1)),
            "X-Consul-Knownleader": "true",
            "X-Consul-Lastcontact": "0",
            "X-Consul-Effective-Consistency": self._consistency(req),
            "X-Consul-Query-Backend": "blocking-query",
        }

    def _block(self, req, min_index, wait, compute):
        """Blocking query: compute() -> (index, payload), run under the store
        lock; repeated after every write until index > min_index or the wait
        (plus up to wait/16 jitter) is over."""
        s = self.s
        with s.lock:
            s.tick()
            index, payload = compute()
            if min_index > 0:
                deadline = time.monotonic() + wait + random.random() * wait / JITTER_FRACTION
                while index <= min_index:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    s.cond.wait(remaining)
                    if s.closing:
                        raise AgentStopping()
                    s.tick()
                    index, payload = compute()
        return max(index, 1), payload

    def _decode(self, req, schema):
        try:
            return schema.decode(parse_json_body(req.body))
        except DecodeError as e:
            raise HTTPError(400, "Request decode failed: %s" % e)

    def _meta_filters(self, req):
        filters = {}
        for item in req.query.get("node-meta", []):
            if ":" in item:
                k, v = item.split(":", 1)
            else:
                k, v = item, ""
            filters[k] = v
        return filters

    @staticmethod
    def _satisfies(meta, filters):
        meta = meta or {}
        return all(k in meta and meta[k] == v for k, v in filters.items())

    # -- status ---------------------------------------------------------------

    def status_leader(self, req):
        self.s.dc(self._dc(req))
        return json_response("%s:8300" % self.s.node_address, req)

    def status_peers(self, req):
        self.s.dc(self._dc(req))
        return json_response(["%s:8300" % self.s.node_address], req)

    # -- agent -----------------------------------------------------------------

    def agent_self(self, req):
        s = self.s
        with s.lock:
            if not s.resolve(req.token()):
                raise PermissionDenied("agent", "read", s.node_name)
            cfg = {
                "Datacenter": s.datacenter, "PrimaryDatacenter": s.datacenter,
                "NodeName": s.node_name, "NodeID": s.node_id, "Revision": "standin",
                "Server": True, "Version": s.version, "BuildDate": "2024-01-01T00:00:00Z",
            }
            return json_response({
                "Config": cfg,
                "DebugConfig": {"Datacenter": s.datacenter, "NodeName": s.node_name,
                                "NodeID": s.node_id, "ServerMode": True,
                                "ACLsEnabled": s.acl_enabled(), "Version": s.version},
                "Coord": {"Vec": [0, 0, 0, 0, 0, 0, 0, 0], "Error": 1.5, "Adjustment": 0, "Height": 1e-05},
                "Member": {
                    "Name": s.node_name, "Addr": s.node_address, "Port": 8301,
                    "Tags": sorted_map({"build": s.version + ":standin", "dc": s.datacenter,
                                        "id": s.node_id, "port": "8300", "role": "consul",
                                        "vsn": "2", "vsn_max": "3", "vsn_min": "2"}),
                    "Status": 1, "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
                    "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
                },
                "Stats": {"consul": {"leader": "true", "server": "true", "known_datacenters": str(len(s.dcs))}},
                "Meta": {"consul-network-segment": "", "consul-version": s.version},
            }, req)

    def agent_service_json(self, svc, content_hash=None):
        s = self.s
        out = {}
        if svc["Kind"]:
            out["Kind"] = svc["Kind"]
        out["ID"] = svc["ID"]
        out["Service"] = svc["Service"]
        out["Tags"] = list(svc["Tags"]) if svc["Tags"] is not None else []
        out["Meta"] = sorted_map(svc["Meta"]) if svc["Meta"] is not None else {}
        out["Port"] = svc["Port"]
        out["Address"] = svc["Address"]
        if svc["SocketPath"]:
            out["SocketPath"] = svc["SocketPath"]
        if svc["TaggedAddresses"]:
            out["TaggedAddresses"] = {k: {"Address": v.get("Address") or "", "Port": v.get("Port") or 0}
                                      for k, v in sorted(svc["TaggedAddresses"].items())}
        w = svc["Weights"]
        out["Weights"] = {"Passing": w["Passing"] if w["Passing"] > 0 else 1, "Warning": w["Warning"]}
        out["EnableTagOverride"] = svc["EnableTagOverride"]
        if content_hash:
            out["ContentHash"] = content_hash
        if svc["Kind"] and svc["Proxy"]:
            out["Proxy"] = svc["Proxy"]
        if svc["Connect"] and svc["Connect"].get("Native"):
            out["Connect"] = {"Native": True}
        out["Datacenter"] = s.datacenter
        if svc["Locality"]:
            out["Locality"] = svc["Locality"]
        return out

    def agent_services(self, req):
        s = self.s
        with s.lock:
            s.tick()
            allowed = s.resolve(req.token())
            out = {}
            if allowed:
                for sid in sorted(s.agent_services):
                    svc = self.agent_service_json(s.agent_services[sid])
                    if req.filter is None or req.filter(svc):
                        out[sid] = svc
            return json_response(out, req)

    def agent_service(self, req):
        s = self.s
        sid = req.path[len("/v1/agent/service/"):]
        _idx, wait = self._parse_wait(req)
        with s.lock:
            allowed = s.resolve(req.token())
        want_hash = req.get("hash")

        def compute():
            svc = s.agent_services.get(sid)
            if svc is None:
                return None, None
            body = self.agent_service_json(svc)
            digest = hashlib.sha256(go_json(body)).hexdigest()[:16]
            return digest, self.agent_service_json(svc, digest)

        with s.lock:
            s.tick()
            digest, body = compute()
            if want_hash and digest is not None:
                deadline = time.monotonic() + wait
                while digest == want_hash:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    s.cond.wait(remaining)
                    if s.closing:
                        raise AgentStopping()
                    s.tick()
                    digest, body = compute()
                    if digest is None:
                        break
            if body is None:
                raise HTTPError(404, "unknown service ID: %s" % sid)
            if not allowed:
                raise PermissionDenied("service", "read", body["Service"])
        return json_response(body, req, {"X-Consul-Contenthash": digest})

    def agent_check_json(self, c):
        return {
            "Node": c["Node"], "CheckID": c["CheckID"], "Name": c["Name"], "Status": c["Status"],
            "Notes": c["Notes"], "Output": c["Output"], "ServiceID": c["ServiceID"],
            "ServiceName": c["ServiceName"],
            "ServiceTags": list(c["ServiceTags"]) if c["ServiceTags"] is not None else [],
            "Type": c["Type"], "Interval": c["Interval"], "Timeout": c["Timeout"],
            "ExposedPort": 0, "Definition": {}, "CreateIndex": 0, "ModifyIndex": 0,
        }

    def agent_checks(self, req):
        s = self.s
        with s.lock:
            s.tick()
            allowed = s.resolve(req.token())
            out = {}
            if allowed:
                for cid in sorted(s.agent_checks):
                    out[cid] = self.agent_check_json(s.agent_checks[cid])
            return json_response(out, req)

    @staticmethod
    def _check_type(ct):
        """Apply CheckType.UnmarshalJSON's alias rules to a decoded Check."""
        ct = dict(ct)
        if not ct.get("ScriptArgs"):
            ct["ScriptArgs"] = ct.get("args") or ct.get("script_args") or None
        if not ct.get("DockerContainerID"):
            ct["DockerContainerID"] = ct.get("docker_container_id") or ""
        if not ct.get("TLSServerName"):
            ct["TLSServerName"] = ct.get("tls_server_name") or ""
        if ct.get("tls_skip_verify"):
            ct["TLSSkipVerify"] = True
        if ct.get("grpc_use_tls"):
            ct["GRPCUseTLS"] = True
        if ct.get("DeregisterCriticalServiceAfter") is None:
            ct["DeregisterCriticalServiceAfter"] = ct.get("deregister_critical_service_after")
        for k in ("args", "script_args", "docker_container_id", "tls_server_name", "tls_skip_verify",
                  "grpc_use_tls", "h2ping_use_tls", "deregister_critical_service_after",
                  "ServiceID", "service_id"):
            ct.pop(k, None)
        for k in ("Interval", "Timeout", "TTL", "DeregisterCriticalServiceAfter"):
            ct[k] = ct.get(k) or 0
        return ct

    @staticmethod
    def _check_empty(ct):
        return not any(v for v in ct.values())

    @staticmethod
    def _check_validate(ct):
        is_script = bool(ct.get("ScriptArgs"))
        alias = bool(ct.get("AliasNode") or ct.get("AliasService"))
        interval_check = is_script or any(ct.get(k) for k in ("HTTP", "TCP", "UDP", "GRPC", "H2PING", "OSService"))
        if ct["Interval"] > 0 and ct["TTL"] > 0:
            return "Interval and TTL cannot both be specified"
        if interval_check and ct["Interval"] <= 0:
            return "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
        if interval_check and alias:
            return "Interval cannot be set for Alias checks"
        if alias and ct["TTL"] > 0:
            return "TTL must be not be set for Alias checks"
        if not interval_check and not alias and ct["TTL"] <= 0:
            return "TTL must be > 0 for TTL checks"
        if (ct.get("OutputMaxSize") or 0) < 0:
            return "MaxOutputMaxSize must be positive"
        if (ct.get("FailuresBeforeWarning") or 0) > (ct.get("FailuresBeforeCritical") or 0):
            return "FailuresBeforeWarning can't be higher than FailuresBeforeCritical"
        return None

    @staticmethod
    def _check_kind(ct):
        iv = ct["Interval"] > 0
        if ct.get("GRPC") and iv:
            return "grpc"
        if ct.get("HTTP") and iv:
            return "http"
        if ct["TTL"] > 0:
            return "ttl"
        if ct.get("TCP") and iv:
            return "tcp"
        if ct.get("UDP") and iv:
            return "udp"
        if ct.get("AliasNode") or ct.get("AliasService"):
            return "alias"
        if ct.get("ScriptArgs") and ct.get("DockerContainerID") and iv:
            return "docker"
        if ct.get("ScriptArgs"):
            return "script"
        if ct.get("H2PING") and iv:
            return "h2ping"
        if ct.get("OSService") and iv:
            return "os_service"
        return ""

    def agent_service_register(self, req):
        s = self.s
        args = self._decode(req, SERVICE_DEFINITION)
        if args is None:
            args = {}
        if args.get("enable_tag_override"):
            args["EnableTagOverride"] = True
        if not args.get("TaggedAddresses"):
            args["TaggedAddresses"] = args.get("tagged_addresses")
        name = args.get("Name") or ""
        if name == "":
            raise HTTPError(400, "Missing service name")
        address = args.get("Address") or ""
        if _is_any_addr(address):
            raise HTTPError(400, "Invalid service address")
        with s.lock:
            s.tick()
            allowed = s.resolve(req.token())
            sid = args.get("ID") or name
            weights = args.get("Weights")
            if weights is not None:
                p, w = weights.get("Passing") or 0, weights.get("Warning") or 0
                err = None
                if p < 1:
                    err = "Passing must be greater than 0"
                elif w < 0:
                    err = "Warning must be greater or equal than 0"
                elif p > 65535 or w > 65535:
                    err = "DNS Weight must be between 0 and 65535"
                if err:
                    raise HTTPError(400, "Invalid Weights: %s" % err)
            err = _validate_meta(args.get("Meta"))
            if err:
                raise HTTPError(400, "Invalid Service Meta: %s" % err)
            chk_types = []
            if args.get("Check") is not None:
                ct = self._check_type(args["Check"])
                if not self._check_empty(ct):
                    chk_types.append(ct)
            for raw in args.get("Checks") or []:
                chk_types.append(self._check_type(raw or {}))
            for ct in chk_types:
                err = self._check_validate(ct)
                if err:
                    raise HTTPError(400, "Invalid check: %s" % err)
            for ct in chk_types:
                if ct.get("Status") and ct["Status"] not in VALID_STATUSES:
                    raise HTTPError(400, "Status for checks must 'passing', 'warning', 'critical'")
            if not allowed:
                raise PermissionDenied("service", "write", name)
            replace = req.has("replace-existing-checks") and req.get("replace-existing-checks") in ("", "true")
            tagged = copy.deepcopy(args.get("TaggedAddresses")) or {}
            for key in ("lan_ipv4", "wan_ipv4", "lan_ipv6", "wan_ipv6"):
                sa = tagged.get(key)
                if sa is None:
                    continue
                v = _ip_version(sa.get("Address") or "")
                if (key.endswith("ipv4") and v != 4) or (key.endswith("ipv6") and v != 6):
                    raise InternalError('Service tagged address "%s" must be a valid %s address' % (key, key[-4:]))
            for ct in chk_types:
                if ct.get("ScriptArgs") and not s.enable_script_checks:
                    raise InternalError("Scripts are disabled on this agent from remote calls; "
                                        "to enable, configure 'enable_script_checks' to true")
            v = _ip_version(address)
            port = args.get("Port") or 0
            if v == 4:
                tagged.setdefault("lan_ipv4", {"Address": address, "Port": port})
                tagged.setdefault("wan_ipv4", {"Address": address, "Port": port})
            elif v == 6:
                tagged.setdefault("lan_ipv6", {"Address": address, "Port": port})
                tagged.setdefault("wan_ipv6", {"Address": address, "Port": port})
            svc = {
                "Kind": args.get("Kind") or "", "ID": sid, "Service": name,
                "Tags": args.get("Tags"), "Address": address,
                "TaggedAddresses": {k: {"Address": v2.get("Address") or "", "Port": v2.get("Port") or 0}
                                    for k, v2 in tagged.items()} or None,
                "Meta": args.get("Meta"), "Port": port, "SocketPath": args.get("SocketPath") or "",
                "Weights": {"Passing": weights.get("Passing") or 0, "Warning": weights.get("Warning") or 0}
                if weights is not None else {"Passing": 1, "Warning": 1},
                "EnableTagOverride": bool(args.get("EnableTagOverride")),
                "Locality": args.get("Locality"), "Proxy": args.get("Proxy"),
                "Connect": args.get("Connect"), "Token": args.get("Token") or "",
            }
            existing = {cid: False for cid, c in s.agent_checks.items() if c["ServiceID"] == sid}
            snapshot = {cid: (c["Status"], c["Output"]) for cid, c in s.agent_checks.items()}
            now = time.monotonic()
            new_checks = []
            for i, ct in enumerate(chk_types):
                cid = ct.get("CheckID") or ""
                if cid == "":
                    cid = "service:%s" % sid
                    if len(chk_types) > 1:
                        cid += ":%d" % (i + 1)
                existing[cid] = True
                status = ct.get("Status") or HEALTH_CRITICAL
                output = ""
                if cid in snapshot:
                    status, output = snapshot[cid]
                dcsa = ct["DeregisterCriticalServiceAfter"] or 0
                reap_after = 0
                if dcsa > 0:
                    reap_after = max(dcsa, s.check_deregister_interval_min)
                new_checks.append({
                    "Node": s.node_name, "CheckID": cid,
                    "Name": ct.get("Name") or "Service '%s' check" % name,
                    "Status": status, "Notes": ct.get("Notes") or "", "Output": output,
                    "ServiceID": sid, "ServiceName": name, "ServiceTags": svc["Tags"],
                    "Type": self._check_kind(ct),
                    "Interval": format_go_duration(ct["Interval"]) if ct["Interval"] else "",
                    "Timeout": format_go_duration(ct["Timeout"]) if ct["Timeout"] else "",
                    "_ttl": ct["TTL"] / SECOND if ct["TTL"] > 0 else 0,
                    "_deadline": now + ct["TTL"] / SECOND if ct["TTL"] > 0 else None,
                    "_critical_time": None, "_reap_after": reap_after,
                    "_last_output": "", "_definition": ct,
                })
            s.agent_services[sid] = svc
            for c in new_checks:
                s.agent_checks[c["CheckID"]] = c
            if replace:
                for cid, keep in existing.items():
                    if not keep:
                        s.agent_checks.pop(cid, None)
            s.sync_agent_node()
        return Response(200)

    def agent_service_deregister(self, req):
        s = self.s
        sid = req.path[len("/v1/agent/service/deregister/"):]
        with s.lock:
            s.tick()
            allowed = s.resolve(req.token())
            svc = s.agent_services.get(sid)
            if svc is None:
                raise HTTPError(404, 'Unknown service ID "%s". Ensure that the service ID is passed, not the service name.' % sid)
            if not allowed:
                raise PermissionDenied("service", "write", svc["Service"])
            s.remove_agent_service(sid)
            s.sync_agent_node()
        return Response(200)

    def _vet_check_update(self, allowed, check_id):
        s = self.s
        c = s.agent_checks.get(check_id)
        if c is None:
            raise HTTPError(404, 'Unknown check ID "%s". Ensure that the check ID is passed, not the check name.' % check_id)
        if not allowed:
            if c["ServiceName"]:
                raise PermissionDenied("service", "write", c["ServiceName"])
            raise PermissionDenied("node", "write", s.node_name)
        return c

    def _update_ttl(self, req, check_id, status, output):
        s = self.s
        with s.lock:
            s.tick()
            allowed = s.resolve(req.token())
            c = self._vet_check_update(allowed, check_id)
            if not c["_ttl"]:
                raise InternalError('CheckID "%s" does not have associated TTL' % check_id)
            total = len(output.encode("utf-8"))
            if total > CHECK_BUF_SIZE:
                output = "%s ... (captured %d of %d bytes)" % (
                    output.encode("utf-8")[:CHECK_BUF_SIZE].decode("utf-8", "replace"), CHECK_BUF_SIZE, total)
            s.update_agent_check(check_id, status, output)
            c["_last_output"] = output
            c["_deadline"] = time.monotonic() + c["_ttl"]
            s.sync_agent_node()
        return Response(200)

    def agent_check_ttl(self, req, prefix, status):
        return self._update_ttl(req, req.path[len(prefix):], status, req.get("note"))

    def agent_check_update(self, req):
        update = self._decode(req, CHECK_UPDATE) or {}
        status = update.get("Status") or ""
        if status not in VALID_STATUSES:
            raise HTTPError(400, "Invalid check status: '%s'" % status)
        return self._update_ttl(req, req.path[len("/v1/agent/check/update/"):], status, update.get("Output") or "")

    # -- catalog -----------------------------------------------------------------

    def catalog_register(self, req):
        s = self.s
        args = self._decode(req, REGISTER_REQUEST) or {}
        dc_name = args.get("Datacenter") or s.datacenter
        with s.lock:
            s.tick()
            dc = s.dc(dc_name)
            allowed = s.resolve(req.token())
            node = args.get("Node") or ""
            if node == "":
                raise InternalError("Must provide node")
            if args.get("ID"):
                err = _parse_uuid(args["ID"])
                if err:
                    raise InternalError("Bad node ID: %s" % err)
            skip = bool(args.get("SkipNodeUpdate"))
            if not args.get("Address") and not skip:
                raise InternalError("Must provide address if SkipNodeUpdate is not set")
            svc = args.get("Service")
            if svc is not None:
                if not svc.get("ID") and svc.get("Service"):
                    svc["ID"] = svc["Service"]
                if svc.get("ID") and not svc.get("Service"):
                    raise InternalError("Must provide service name (Service.Service) when service ID is provided")
                if not svc.get("ID"):
                    raise InternalError("failed inserting service: missing value for index")
                if _is_any_addr(svc.get("Address") or ""):
                    raise InternalError("Invalid service address")
                if not allowed:
                    raise PermissionDenied("service", "write", svc["Service"])
            checks = list(args.get("Checks") or [])
            if args.get("Check") is not None:
                checks.append(args["Check"])
            for chk in checks:
                if not chk.get("Node"):
                    chk["Node"] = node
                if not chk.get("CheckID") and chk.get("Name"):
                    chk["CheckID"] = chk["Name"]
                if not chk.get("Type"):
                    d = chk.get("Definition") or {}
                    ct = {"Interval": d.get("Interval") or 0, "TTL": d.get("TTL") or 0,
                          "GRPC": d.get("GRPC"), "HTTP": d.get("HTTP"), "TCP": d.get("TCP"),
                          "UDP": d.get("UDP"), "AliasNode": d.get("AliasNode"),
                          "AliasService": d.get("AliasService"), "ScriptArgs": d.get("ScriptArgs"),
                          "DockerContainerID": d.get("DockerContainerID"), "H2PING": d.get("H2PING"),
                          "OSService": d.get("OSService")}
                    chk["Type"] = self._check_kind(ct)
                if chk.get("Definition"):
                    chk["Definition"] = self._definition_json(chk["Definition"])
            lnode = node.lower()
            if not allowed:
                existing = dc.nodes.get(lnode)
                if existing is None or (not skip and not s._node_same(existing, {
                        "ID": args.get("ID") or "", "Node": node, "Address": args.get("Address") or "",
                        "Datacenter": dc.name, "TaggedAddresses": sorted_map(args.get("TaggedAddresses")),
                        "Meta": sorted_map(args.get("NodeMeta"))})):
                    raise PermissionDenied("node", "write", node)
            for chk in checks:
                if chk["Node"].lower() != lnode:
                    raise InternalError("Node '%s' for check '%s' doesn't match register request node '%s'"
                                        % (chk["Node"], chk.get("CheckID") or "", node))
                if allowed:
                    continue
                csid = chk.get("ServiceID") or ""
                if not csid:
                    raise PermissionDenied("node", "write", node)
                other = dc.services.get(lnode, {}).get(csid.lower())
                if other is None:
                    raise InternalError("Unknown service ID '%s' for check ID '%s'" % (csid, chk.get("CheckID") or ""))
                raise PermissionDenied("service", "write", other["Service"])
            planned = [(lnode, svc["ID"].lower())] if svc is not None else [(lnode, None)]
            for chk in checks:
                try:
                    s._validate_check(dc, chk, planned)
                except StoreError as e:
                    raise InternalError(str(e))
            idx = s.next_index()
            if lnode not in dc.nodes or not skip:
                s._ensure_node(dc, {"ID": args.get("ID") or "", "Node": node,
                                    "Address": args.get("Address") or "",
                                    "TaggedAddresses": args.get("TaggedAddresses"),
                                    "Meta": args.get("NodeMeta"),
                                    "Locality": args.get("Locality")}, idx)
            if svc is not None:
                s._ensure_service(dc, dc.nodes[lnode]["Node"], svc, idx)
            for chk in checks:
                s._ensure_check(dc, chk, idx)
            if dc.name == s.datacenter and lnode == s.node_name.lower():
                s.sync_agent_node()
            s.notify()
        return json_response(True, req)

    @staticmethod
    def _definition_json(d):
        out = {}
        for k in ("HTTP", "TLSServerName", "TLSSkipVerify", "Header", "Method", "Body", "DisableRedirects",
                  "TCP", "UDP", "H2PING", "OSService", "H2PingUseTLS"):
            if d.get(k):
                out[k] = d[k]
        for k in ("Interval", "OutputMaxSize", "Timeout", "DeregisterCriticalServiceAfter"):
            if d.get(k):
                out[k] = format_go_duration(d[k]) if k != "OutputMaxSize" else d[k]
        for k in ("ScriptArgs", "DockerContainerID", "Shell", "GRPC", "GRPCUseTLS", "AliasNode",
                  "AliasService", "TTL"):
            if d.get(k):
                out[k] = d[k]
        # HealthCheckDefinition.MarshalJSON puts its string durations first.
        order = ["Interval", "OutputMaxSize", "Timeout", "DeregisterCriticalServiceAfter"]
        return {k: out[k] for k in order + [k for k in out if k not in order] if k in out}

    def catalog_deregister(self, req):
        s = self.s
        args = self._decode(req, DEREGISTER_REQUEST) or {}
        dc_name = args.get("Datacenter") or s.datacenter
        with s.lock:
            s.tick()
            dc = s.dc(dc_name)
            node = args.get("Node") or ""
            if node == "":
                raise InternalError("Must provide node")
            allowed = s.resolve(req.token())
            lnode = node.lower()
            sid = args.get("ServiceID") or ""
            cid = args.get("CheckID") or ""
            if not allowed:
                if sid:
                    svc = dc.services.get(lnode, {}).get(sid.lower())
                    if svc is None:
                        raise InternalError("Unknown service ID '%s'" % sid)
                    raise PermissionDenied("service", "write", svc["Service"])
                if cid:
                    chk = dc.checks.get(lnode, {}).get(cid.lower())
                    if chk is None:
                        raise InternalError("Unknown check ID '%s'" % cid)
                    if chk["ServiceID"]:
                        raise PermissionDenied("service", "write", chk["ServiceName"])
                raise PermissionDenied("node", "write", node)
            idx = s.next_index()
            if sid:
                s._delete_service(dc, lnode, sid, idx)
            elif cid:
                s._delete_check(dc, lnode, cid, idx)
            else:
                s._delete_node(dc, lnode, idx)
            if dc.name == s.datacenter and lnode == s.node_name.lower():
                s.sync_agent_node()
            s.notify()
        return json_response(True, req)

    def catalog_datacenters(self, req):
        s = self.s
        others = sorted(d for d in s.dcs if d != s.datacenter)
        return json_response([s.datacenter] + others, req)

    def _node_json(self, n):
        out = {"ID": n["ID"], "Node": n["Node"], "Address": n["Address"], "Datacenter": n["Datacenter"],
               "TaggedAddresses": n["TaggedAddresses"], "Meta": n["Meta"]}
        if n.get("Locality"):
            out["Locality"] = n["Locality"]
        out["CreateIndex"] = n["CreateIndex"]
        out["ModifyIndex"] = n["ModifyIndex"]
        return out

    def catalog_nodes(self, req):
        s = self.s
        min_index, wait = self._parse_query_options(req)
        filters = self._meta_filters(req)
        with s.lock:
            dc = s.dc(self._dc(req))
            allowed = s.resolve(req.token())

        def compute():
            nodes = [self._node_json(dc.nodes[k]) for k in sorted(dc.nodes)
                     if self._satisfies(dc.nodes[k]["Meta"], filters)]
            nodes = [n for n in nodes if req.filter is None or req.filter(n)]
            return dc.tables["nodes"], nodes if allowed else []

        index, nodes = self._block(req, min_index, wait, compute)
        return json_response(nodes, req, self._meta_headers(req, index))

    def catalog_services(self, req):
        s = self.s
        min_index, wait = self._parse_query_options(req)
        filters = self._meta_filters(req)
        with s.lock:
            dc = s.dc(self._dc(req))
            allowed = s.resolve(req.token())

        def compute():
            unique = {}
            for lnode in sorted(dc.services):
                if not self._satisfies(dc.nodes[lnode]["Meta"], filters):
                    continue
                for svc in dc.services[lnode].values():
                    tags = unique.setdefault(svc["Service"], set())
                    tags.update(svc["Tags"] or [])
            out = {}
            for name in sorted(unique):
                tags = list(unique[name])
                random.shuffle(tags)  # Go builds this list from a map: no order
                out[name] = tags
            return dc.tables["services"], out if allowed else {}

        index, services = self._block(req, min_index, wait, compute)
        return json_response(services, req, self._meta_headers(req, index))

    def _service_node_json(self, dc, node, svc):
        out = {
            "ID": node["ID"], "Node": node["Node"], "Address": node["Address"],
            "Datacenter": node["Datacenter"], "TaggedAddresses": node["TaggedAddresses"],
            "NodeMeta": node["Meta"], "ServiceKind": svc["Kind"], "ServiceID": svc["ID"],
            "ServiceName": svc["Service"],
            "ServiceTags": list(svc["Tags"]) if svc["Tags"] is not None else [],
            "ServiceAddress": svc["Address"],
        }
        if svc["TaggedAddresses"]:
            out["ServiceTaggedAddresses"] = {k: {"Address": v.get("Address") or "", "Port": v.get("Port") or 0}
                                             for k, v in sorted(svc["TaggedAddresses"].items())}
        out.update({
            "ServiceWeights": dict(svc["Weights"]),
            "ServiceMeta": sorted_map(svc["Meta"]) if svc["Meta"] is not None else {},
            "ServicePort": svc["Port"], "ServiceSocketPath": svc["SocketPath"],
            "ServiceEnableTagOverride": svc["EnableTagOverride"],
            "ServiceProxy": copy.deepcopy(svc["Proxy"]), "ServiceConnect": copy.deepcopy(svc["Connect"]),
            "ServiceLocality": svc["Locality"],
            "CreateIndex": svc["CreateIndex"], "ModifyIndex": svc["ModifyIndex"],
        })
        return out

    def catalog_service(self, req):
        s = self.s
        min_index, wait = self._parse_query_options(req)
        filters = self._meta_filters(req)
        name = req.path[len("/v1/catalog/service/"):]
        if name == "":
            raise HTTPError(400, "Missing service name")
        tags = req.query.get("tag") if req.has("tag") else None
        with s.lock:
            dc = s.dc(self._dc(req))
            allowed = s.resolve(req.token())

        def compute():
            lname = name.lower()
            results = []
            found = False
            for lnode in sorted(dc.services):
                for lsid in sorted(dc.services[lnode]):
                    svc = dc.services[lnode][lsid]
                    if svc["Service"].lower() != lname:
                        continue
                    found = True
                    node = dc.nodes[lnode]
                    if not self._satisfies(node["Meta"], filters):
                        continue
                    if tags is not None:
                        have = [t.lower() for t in (svc["Tags"] or [])]
                        if not all(t.lower() in have for t in tags):
                            continue
                    entry = self._service_node_json(dc, node, svc)
                    if req.filter is None or req.filter(entry):
                        results.append(entry)
            if found and lname in dc.service_index:
                index = dc.service_index[lname]
            elif dc.service_extinction:
                index = dc.service_extinction
            else:
                index = max(dc.tables["nodes"], dc.tables["services"])
            return index, results if allowed else []

        index, results = self._block(req, min_index, wait, compute)
        return json_response(results, req, self._meta_headers(req, index))

    def _node_service_json(self, svc):
        out = {}
        if svc["Kind"]:
            out["Kind"] = svc["Kind"]
        out.update({"ID": svc["ID"], "Service": svc["Service"],
                    "Tags": list(svc["Tags"]) if svc["Tags"] is not None else [],
                    "Address": svc["Address"]})
        if svc["TaggedAddresses"]:
            out["TaggedAddresses"] = {k: {"Address": v.get("Address") or "", "Port": v.get("Port") or 0}
                                      for k, v in sorted(svc["TaggedAddresses"].items())}
        out["Meta"] = sorted_map(svc["Meta"]) if svc["Meta"] is not None else {}
        if svc["Port"]:
            out["Port"] = svc["Port"]
        if svc["SocketPath"]:
            out["SocketPath"] = svc["SocketPath"]
        out["Weights"] = dict(svc["Weights"])
        out["EnableTagOverride"] = svc["EnableTagOverride"]
        if svc["Locality"]:
            out["Locality"] = svc["Locality"]
        out["Proxy"] = copy.deepcopy(svc["Proxy"])
        out["Connect"] = copy.deepcopy(svc["Connect"])
        out["PeerName"] = ""
        out["CreateIndex"] = svc["CreateIndex"]
        out["ModifyIndex"] = svc["ModifyIndex"]
        return out

    def catalog_node(self, req):
        s = self.s
        min_index, wait = self._parse_query_options(req)
        name = req.path[len("/v1/catalog/node/"):]
        if name == "":
            raise HTTPError(400, "Missing node name")
        with s.lock:
            dc = s.dc(self._dc(req))
            allowed = s.resolve(req.token())

        def compute():
            index = max(dc.tables["nodes"], dc.tables["services"])
            node = dc.nodes.get(name.lower())
            if node is None or not allowed:
                return index, None
            services = {svc["ID"]: self._node_service_json(svc)
                        for svc in sorted(dc.services[name.lower()].values(), key=lambda x: x["ID"])}
            return index, {"Node": self._node_json(node), "Services": sorted_map(services)}

        index, body = self._block(req, min_index, wait, compute)
        return json_response(body, req, self._meta_headers(req, index))

    # -- health --------------------------------------------------------------------

    @staticmethod
    def _health_check_json(c):
        """structs.HealthCheck as the health endpoints give it; ServiceTags
        is never null there."""
        out = {k: copy.deepcopy(c.get(k)) for k in (
            "Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName")}
        out["ServiceTags"] = list(c.get("ServiceTags") or [])
        out.update({"Type": c.get("Type") or "", "Interval": c.get("Interval") or "",
                    "Timeout": c.get("Timeout") or "", "ExposedPort": c.get("ExposedPort") or 0,
                    "Definition": copy.deepcopy(c.get("Definition") or {}),
                    "CreateIndex": c["CreateIndex"], "ModifyIndex": c["ModifyIndex"]})
        return out

    @staticmethod
    def _passing_param(req):
        """?passing, ?passing=1, ?passing=false...: strconv.ParseBool."""
        if not req.has("passing"):
            return False
        val = req.get("passing")
        if val == "":
            return True
        if val in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if val in ("0", "f", "F", "FALSE", "false", "False"):
            return False
        raise HTTPError(400, "Invalid value for ?passing")

    def _health_read(self, req, prefix, what):
        """The path's name (400 if missing), the query options, the store
        lock's view of the datacenter, and whether the token may read."""
        name = req.path[len(prefix):]
        if name == "":
            raise HTTPError(400, "Missing %s" % what)
        min_index, wait = self._parse_query_options(req)
        with self.s.lock:
            dc = self.s.dc(self._dc(req))
            allowed = self.s.resolve(req.token())
        return name, min_index, wait, dc, allowed

    def _node_checks_sorted(self, dc, lnode):
        checks = dc.checks.get(lnode, {})
        return [checks[k] for k in sorted(checks)]

    def health_service(self, req):
        """GET /v1/health/service/:service: each instance with its node and
        every check that applies to it: the node's own checks (serfHealth),
        then the service's, each ordered by check ID."""
        name, min_index, wait, dc, allowed = self._health_read(req, "/v1/health/service/", "service name")
        passing = self._passing_param(req)
        filters = self._meta_filters(req)
        tags = req.query.get("tag") if req.has("tag") else None

        def compute():
            lname = name.lower()
            results = []
            found = False
            for lnode in sorted(dc.services):
                node = dc.nodes[lnode]
                for lsid in sorted(dc.services[lnode]):
                    svc = dc.services[lnode][lsid]
                    if svc["Service"].lower() != lname:
                        continue
                    found = True
                    if not self._satisfies(node["Meta"], filters):
                        continue
                    if tags is not None:
                        have = [t.lower() for t in (svc["Tags"] or [])]
                        if not all(t.lower() in have for t in tags):
                            continue
                    checks = [c for c in self._node_checks_sorted(dc, lnode) if not c["ServiceID"]]
                    checks += [c for c in self._node_checks_sorted(dc, lnode) if c["ServiceID"].lower() == lsid]
                    if passing and any(c["Status"] != HEALTH_PASSING for c in checks):
                        continue
                    entry = {"Node": self._node_json(node), "Service": self._node_service_json(svc),
                             "Checks": [self._health_check_json(c) for c in checks]}
                    if req.filter is None or req.filter(entry):
                        results.append(entry)
            if found and lname in dc.service_index:
                index = dc.service_index[lname]
            elif dc.service_extinction:
                index = dc.service_extinction
            else:
                index = max(dc.tables["nodes"], dc.tables["services"], dc.tables["checks"])
            return index, results if allowed else []

        index, results = self._block(req, min_index, wait, compute)
        return json_response(results, req, self._meta_headers(req, index))

    def _checks_response(self, req, dc, allowed, min_index, wait, select):
        """A list of health checks, ordered by node then check ID."""
        filters = self._meta_filters(req)

        def compute():
            out = []
            for lnode in sorted(dc.checks):
                if not self._satisfies(dc.nodes[lnode]["Meta"], filters):
                    continue
                for c in self._node_checks_sorted(dc, lnode):
                    if select(lnode, c):
                        chk = self._health_check_json(c)
                        if req.filter is None or req.filter(chk):
                            out.append(chk)
            return dc.tables["checks"], out if allowed else []

        index, checks = self._block(req, min_index, wait, compute)
        return json_response(checks, req, self._meta_headers(req, index))

    def health_checks(self, req):
        """GET /v1/health/checks/:service: the checks of every instance of
        the service (not the node checks)."""
        name, min_index, wait, dc, allowed = self._health_read(req, "/v1/health/checks/", "service name")
        return self._checks_response(req, dc, allowed, min_index, wait,
                                     lambda lnode, c: c["ServiceID"] != "" and c["ServiceName"].lower() == name.lower())

    def health_state(self, req):
        """GET /v1/health/state/:state: any, passing, warning or critical."""
        state, min_index, wait, dc, allowed = self._health_read(req, "/v1/health/state/", "check state")
        if state not in ("any",) + VALID_STATUSES:
            raise HTTPError(400, "Bad check state")
        return self._checks_response(req, dc, allowed, min_index, wait,
                                     lambda lnode, c: state == "any" or c["Status"] == state)

    def health_node(self, req):
        """GET /v1/health/node/:node: the checks of one node."""
        node, min_index, wait, dc, allowed = self._health_read(req, "/v1/health/node/", "node name")
        return self._checks_response(req, dc, allowed, min_index, wait,
                                     lambda lnode, c: lnode == node.lower())

    # -- KV --------------------------------------------------------------------------

    @staticmethod
    def _kv_json(e):
        out = {"LockIndex": e["LockIndex"], "Key": e["Key"], "Flags": e["Flags"],
               "Value": base64.b64encode(e["Value"]).decode("ascii") if e["Value"] is not None else None}
        if e["Session"]:
            out["Session"] = e["Session"]
        out["CreateIndex"] = e["CreateIndex"]
        out["ModifyIndex"] = e["ModifyIndex"]
        return out

    @staticmethod
    def _kvs_max_index(dc):
        return max(dc.tables["kvs"], dc.tables["tombstones"])

    def _conflicting(self, req, *flags):
        found = False
        for f in flags:
            if req.has(f):
                if found:
                    raise HTTPError(400, "Conflicting flags: " + _go_values_encode(req.query))
                found = True

    def kv(self, req):
        key = req.path[len("/v1/kv/"):]
        if req.method == "GET":
            min_index, wait = self._parse_query_options(req)
            if req.has("keys"):
                return self.kv_keys(req, key, min_index, wait)
            return self.kv_get(req, key, min_index, wait)
        if req.method == "PUT":
            return self.kv_put(req, key)
        return self.kv_delete(req, key)

    def kv_get(self, req, key, min_index, wait):
        s = self.s
        recurse = req.has("recurse")
        if not recurse and key == "":
            raise HTTPError(400, "Missing key name")
        with s.lock:
            dc = s.dc(self._dc(req))
            allowed = s.resolve(req.token())
            if not recurse and not allowed:
                raise PermissionDenied("key", "read", key)

        def compute():
            if not recurse:
                e = dc.kv.get(key)
                if e is None:
                    return self._kvs_max_index(dc), []
                return e["ModifyIndex"], [self._kv_json(e)]
            entries = [dc.kv[k] for k in sorted(dc.kv) if k.startswith(key)]
            lindex = max([e["ModifyIndex"] for e in entries] + [0])
            if key != "":
                lindex = max([lindex] + [i for k, i in dc.tombstones.items() if k.startswith(key)])
            else:
                lindex = self._kvs_max_index(dc)
            index = lindex or self._kvs_max_index(dc)
            return index, [self._kv_json(e) for e in entries] if allowed else []

        index, entries = self._block(req, min_index, wait, compute)
        headers = self._meta_headers(req, index)
        if not entries:
            return Response(404, b"", None, headers)
        if req.has("raw") and not recurse:
            value = base64.b64decode(entries[0]["Value"]) if entries[0]["Value"] is not None else b""
            headers.update({"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})
            return Response(200, value, "text/plain", headers)
        return json_response(entries, req, headers)

    def kv_keys(self, req, prefix, min_index, wait):
        s = self.s
        sep = ""
        if req.has("seperator"):
            sep = req.get("seperator")
        if req.has("separator"):
            sep = req.get("separator")
        with s.lock:
            dc = s.dc(self._dc(req))
            allowed = s.resolve(req.token())

        def compute():
            keys = []
            lindex = 0
            last = None
            for k in sorted(dc.kv):
                if not k.startswith(prefix):
                    continue
                e = dc.kv[k]
                lindex = max(lindex, e["ModifyIndex"])
                if sep == "":
                    keys.append(k)
                    continue
                after = k[len(prefix):]
                pos = after.find(sep)
                if pos == -1:
                    keys.append(k)
                    continue
                short = k[:len(prefix) + pos + len(sep)]
                if short != last:
                    keys.append(short)
                last = short
            if prefix != "":
                lindex = max([lindex] + [i for k, i in dc.tombstones.items() if k.startswith(prefix)])
            else:
                lindex = self._kvs_max_index(dc)
            index = lindex or self._kvs_max_index(dc)
            return index, keys if allowed else []

        index, keys = self._block(req, min_index, wait, compute)
        headers = self._meta_headers(req, index)
        if not keys and prefix != "":
            return Response(404, b"", None, headers)
        return json_response(keys, req, headers)

    def kv_put(self, req, key):
        s = self.s
        if key == "":
            raise HTTPError(400, "Missing key name")
        self._conflicting(req, "cas", "acquire", "release")
        flags = 0
        if req.has("flags"):
            flags = self._parse_uint(req.get("flags"))
        op = "set"
        cas = 0
        if req.has("cas"):
            cas = self._parse_uint(req.get("cas"))
            op = "cas"
        session = ""
        if req.has("acquire"):
            session = req.get("acquire")
            op = "lock"
        if req.has("release"):
            session = req.get("release")
            op = "unlock"
        if len(req.body) > KV_MAX_VALUE_SIZE:
            raise HTTPError(413, "Request body(%d bytes) too large, max size: %d bytes. See %s." % (
                len(req.body), KV_MAX_VALUE_SIZE,
                "https://www.consul.io/docs/agent/config/config-files#kv_max_value_size"))
        value = req.body if req.body else None
        with s.lock:
            s.tick()
            dc = s.dc(self._dc(req))
            if not s.resolve(req.token()):
                raise PermissionDenied("key", "write", key)
            if op == "lock":
                expires = dc.lock_delay.get(key)
                if expires is not None and expires > time.monotonic():
                    return json_response(False, req)
            idx = s.next_index()
            ok = self._kv_apply(dc, op, key, value, flags, cas, session, idx)
            s.notify()
        if op == "set":
            return json_response(True, req)
        return json_response(ok, req)

    @staticmethod
    def _parse_uint(text):
        if not re.match(r"^[0-9]+$", text) or int(text) >= 1 << 64:
            what = "value out of range" if re.match(r"^[0-9]+$", text) else "invalid syntax"
            raise InternalError('strconv.ParseUint: parsing %s: %s' % (_go_quote(text), what))
        return int(text)

    def _kv_apply(self, dc, op, key, value, flags, cas, session, idx):
        existing = dc.kv.get(key)
        entry = {"LockIndex": 0, "Key": key, "Flags": flags, "Value": value, "Session": ""}
        if op == "cas":
            if cas == 0 and existing is not None:
                return False
            if cas != 0 and (existing is None or existing["ModifyIndex"] != cas):
                return False
            op = "set"
        if op == "set":
            entry["Session"] = existing["Session"] if existing else ""
        elif op == "lock":
            if session == "":
                raise InternalError("apply failed: missing session")
            if session not in dc.sessions:
                raise InternalError("apply failed: invalid session %s" % _go_quote(session))
            if existing is not None:
                if existing["Session"] == session:
                    entry["LockIndex"] = existing["LockIndex"]
                elif existing["Session"]:
                    return False
                else:
                    entry["LockIndex"] = existing["LockIndex"] + 1
            else:
                entry["LockIndex"] = 1
            entry["Session"] = session
        elif op == "unlock":
            if session == "":
                raise InternalError("apply failed: missing session")
            if existing is None or existing["Session"] != session:
                return False
            entry["Session"] = ""
            entry["LockIndex"] = existing["LockIndex"]
        same = existing is not None and all(existing[k] == entry[k] for k in
                                            ("LockIndex", "Key", "Flags", "Value", "Session"))
        if same:
            return True
        entry["CreateIndex"] = existing["CreateIndex"] if existing else idx
        entry["ModifyIndex"] = idx
        dc.kv[key] = entry
        dc.tables["kvs"] = idx
        return True

    def kv_delete(self, req, key):
        s = self.s
        self._conflicting(req, "recurse", "cas")
        recurse = req.has("recurse")
        if not recurse and key == "":
            raise HTTPError(400, "Missing key name")
        cas = None
        if req.has("cas"):
            cas = self._parse_uint(req.get("cas"))
        with s.lock:
            s.tick()
            dc = s.dc(self._dc(req))
            if not s.resolve(req.token()):
                raise PermissionDenied("key", "write", key)
            idx = s.next_index()
            result = True
            if recurse:
                for k in [k for k in sorted(dc.kv) if k.startswith(key)]:
                    s._kv_delete(dc, k, idx)
            elif cas is not None:
                e = dc.kv.get(key)
                if e is None:
                    result = True
                elif e["ModifyIndex"] != cas:
                    result = False
                else:
                    s._kv_delete(dc, key, idx)
            else:
                s._kv_delete(dc, key, idx)
            s.notify()
        return json_response(result, req)

    # -- sessions ------------------------------------------------------------------

    @staticmethod
    def _session_json(sess):
        out = {k: copy.deepcopy(sess[k]) for k in ("ID", "Name", "Node", "LockDelay", "Behavior", "TTL",
                                                   "NodeChecks", "ServiceChecks")}
        if sess.get("Checks"):
            out["Checks"] = list(sess["Checks"])
        out["CreateIndex"] = sess["CreateIndex"]
        out["ModifyIndex"] = sess["ModifyIndex"]
        return out

    def session_create(self, req):
        s = self.s
        sess = {"ID": "", "Name": "", "Node": s.node_name, "LockDelay": 15 * SECOND,
                "Behavior": "release", "TTL": "", "NodeChecks": [SERF_CHECK_ID],
                "ServiceChecks": None, "Checks": [SERF_CHECK_ID]}
        dc_name = self._dc(req)
        length = req.header("Content-Length")
        if length.isdigit() and int(length) > 0:
            try:
                raw = SESSION.decode(parse_json_body(req.body)) or {}
            except DecodeError as e:
                raise HTTPError(400, "Request decode failed: %s" % e)
            for k, v in raw.items():
                if k == "LockDelay":
                    if v is None:
                        continue
                    if v < LOCK_DELAY_MIN_THRESHOLD:
                        v = v * SECOND
                elif k == "ServiceChecks" and v is not None:
                    v = [{"ID": (sc or {}).get("ID") or "", "Namespace": (sc or {}).get("Namespace") or ""} for sc in v]
                elif v is None and k in ("Name", "Node", "Behavior", "TTL", "ID"):
                    v = ""
                sess[k] = v
        # fixupEmptySessionChecks
        if not sess["Checks"]:
            sess["NodeChecks"] = []
        elif len(sess["Checks"]) == 1 and sess["Checks"][0] == SERF_CHECK_ID:
            sess["Checks"] = None
        elif not sess["NodeChecks"]:
            sess["Checks"] = None
        with s.lock:
            s.tick()
            dc = s.dc(dc_name)
            if sess["Node"] == "":
                raise InternalError("Must provide Node")
            if not s.resolve(req.token()):
                raise PermissionDenied("session", "write", sess["Node"])
            if sess["Behavior"] == "":
                sess["Behavior"] = "release"
            if sess["Behavior"] not in ("release", "delete"):
                raise InternalError("Invalid Behavior setting '%s'" % sess["Behavior"])
            if sess["TTL"]:
                try:
                    ttl = parse_go_duration(sess["TTL"])
                except DurationError as e:
                    raise InternalError("Session TTL '%s' invalid: %s" % (sess["TTL"], e))
                if ttl != 0 and (ttl < s.session_ttl_min or ttl > SESSION_TTL_MAX):
                    raise InternalError("Invalid Session TTL '%d', must be between [%s=%s]" % (
                        ttl, format_go_duration(s.session_ttl_min), format_go_duration(SESSION_TTL_MAX)))
            lnode = sess["Node"].lower()
            if lnode not in dc.nodes:
                raise InternalError("apply failed: Missing node registration")
            for cid in s.session_check_ids(sess):
                chk = dc.checks.get(lnode, {}).get(cid.lower())
                if chk is None:
                    raise InternalError("apply failed: Missing check '%s' registration" % cid)
                if chk["Status"] == HEALTH_CRITICAL:
                    raise InternalError("apply failed: Check '%s' is in %s state" % (cid, chk["Status"]))
            sess["ID"] = _new_uuid()
            while sess["ID"] in dc.sessions:
                sess["ID"] = _new_uuid()
            idx = s.next_index()
            sess["CreateIndex"] = idx
            sess["ModifyIndex"] = idx
            s.reset_session_timer(sess)
            dc.sessions[sess["ID"]] = sess
            dc.tables["sessions"] = idx
            s.notify()
            return json_response({"ID": sess["ID"]}, req)

    def session_destroy(self, req):
        s = self.s
        sid = req.path[len("/v1/session/destroy/"):]
        if sid == "":
            raise HTTPError(400, "Missing session")
        with s.lock:
            s.tick()
            dc = s.dc(self._dc(req))
            allowed = s.resolve(req.token())
            if _parse_uuid(sid):
                # The docs: "If the session UUID is malformed, an error is
                # returned." The text is memdb's UUID index error (a guess).
                raise InternalError("Session lookup failed: index error: UUID must be 36 characters"
                                    if len(sid) != 36 else "Session lookup failed: index error: invalid UUID")
            sess = dc.sessions.get(sid)
            if sess is not None:
                if not allowed:
                    raise PermissionDenied("session", "write", sess["Node"])
                s._delete_session(dc, sid, s.next_index())
                s.notify()
        return json_response(True, req)

    def session_renew(self, req):
        s = self.s
        self._parse_query_options(req)
        sid = req.path[len("/v1/session/renew/"):]
        if sid == "":
            raise HTTPError(400, "Missing session")
        with s.lock:
            s.tick()
            dc = s.dc(self._dc(req))
            allowed = s.resolve(req.token())
            sess = dc.sessions.get(sid)
            if sess is None:
                raise HTTPError(404, "Session id '%s' not found" % sid)
            if not allowed:
                raise PermissionDenied("session", "write", sess["Node"])
            s.reset_session_timer(sess)
            return json_response([self._session_json(sess)], req)

    def _session_query(self, req, select):
        s = self.s
        min_index, wait = self._parse_query_options(req)
        with s.lock:
            dc = s.dc(self._dc(req))
            allowed = s.resolve(req.token())

        def compute():
            found = [self._session_json(dc.sessions[k]) for k in sorted(dc.sessions) if select(dc.sessions[k])]
            return dc.tables["sessions"], found if allowed else []

        index, found = self._block(req, min_index, wait, compute)
        return json_response(found, req, self._meta_headers(req, index))

    def session_info(self, req):
        sid = req.path[len("/v1/session/info/"):]
        if sid == "":
            raise HTTPError(400, "Missing session")
        return self._session_query(req, lambda sess: sess["ID"] == sid)

    def session_node(self, req):
        node = req.path[len("/v1/session/node/"):]
        if node == "":
            raise HTTPError(400, "Missing node name")
        return self._session_query(req, lambda sess: sess["Node"].lower() == node.lower())

    def session_list(self, req):
        return self._session_query(req, lambda sess: True)


# ---------------------------------------------------------------------------
# HTTP server
# ---------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "consul-standin"
    standin = None  # set on a subclass per server

    def log_message(self, fmt, *args):  # silence the default stderr log
        pass

    def send_response(self, code, message=None):
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:
                        trailer = self.rfile.readline()
                        if trailer in (b"\r\n", b"\n", b""):
                            break
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if length and length.strip().isdigit():
            return self.rfile.read(int(length))
        return b""

    def _dispatch(self):
        start = time.monotonic()
        standin = self.standin
        raw_path, _, raw_query = self.path.partition("?")
        body = self._read_body()
        headers = {k: v for k, v in self.headers.items()}
        standin._record(RecordedRequest(self.command, raw_path,
                                        urllib.parse.parse_qs(raw_query, keep_blank_values=True),
                                        headers, body))
        path = urllib.parse.unquote(raw_path)
        req = Request(self.command, path, raw_query, self.headers, body)
        try:
            resp = standin._serve(req)
        except AgentStopping:
            self.close_connection = True
            return
        except Exception as e:  # a bug in the stand-in: say so loudly
            resp = text_response(500, "consul stand-in internal error: %r" % (e,))
            standin._log_line("INTERNAL ERROR %r" % (e,))
        # logged before the answer goes out, so the log keeps the order in
        # which a client saw its requests answered
        standin._log_line("%s %s %s%s %d %.1fms" % (
            self.client_address[0], self.command, raw_path,
            ("?" + _redact_token(raw_query)) if raw_query else "", resp.status,
            (time.monotonic() - start) * 1000))
        self._write(req, resp)

    def _write(self, req, resp):
        body = resp.body
        headers = dict(resp.headers)
        if resp.content_type:
            headers["Content-Type"] = resp.content_type
        headers["Vary"] = "Accept-Encoding"
        accept = req.header("Accept-Encoding")
        if body and "gzip" in [a.split(";")[0].strip().lower() for a in accept.split(",")]:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        if self.command == "HEAD":
            out_body = b""
        else:
            out_body = body
        self.send_response(resp.status)
        for k, v in headers.items():
            self.send_header(_canonical_header(k), v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if out_body:
                self.wfile.write(out_body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its long poll was cancelled)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _dispatch


def _redact_token(raw_query):
    return re.sub(r"(^|&)token=[^&]*", r"\1token=<hidden>", raw_query)


class AgentStopping(Exception):
    """A blocking query cut short by stop(): like a Consul process that
    exits, the stand-in drops the connection without an answer."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._open = set()
        self._open_lock = threading.Lock()

    # Kept-alive connections outlive shutdown(); a stopped agent must not
    # go on answering on them, so they are tracked and cut in close_all().
    def process_request(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_all(self):
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        # a client that refuses our certificate (or none) is a test's
        # point, not a stand-in fault worth a traceback
        if isinstance(sys.exc_info()[1], ssl.SSLError):
            return
        super().handle_error(request, client_address)


class StandIn(object):
    """A running stand-in. Read-only views of its state are deep copies in
    Consul's JSON shapes."""

    def __init__(self, port=0, acl_token=None, datacenter="dc1", node_name=None,
                 node_address="127.0.0.1", log=None, extra_datacenters=(),
                 session_ttl_min=10.0, session_ttl_multiplier=1.0,
                 check_deregister_interval_min=60.0, check_reap_interval=30.0,
                 enable_script_checks=False, version=STANDIN_VERSION,
                 register_consul_service=True, tls=None):
        self.store = Store(datacenter, node_name or socket.gethostname(), node_address, acl_token,
                           extra_datacenters, session_ttl_min, session_ttl_multiplier,
                           check_deregister_interval_min, check_reap_interval,
                           enable_script_checks, version, register_consul_service)
        self.api = API(self.store)
        self.requests = []
        self._requests_lock = threading.Lock()
        self._log_file = open(log, "a", encoding="utf-8") if log else None
        self._log_lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = _Server(("127.0.0.1", port), handler)
        if tls is not None:
            # the handshake happens in each connection's thread, not in accept()
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
        self.host = "127.0.0.1"
        self.port = self._server.server_address[1]
        self.url = "%s://%s:%d" % ("https" if tls else "http", self.host, self.port)
        self._stop = threading.Event()
        self._serve_thread = threading.Thread(target=self._server.serve_forever,
                                              kwargs={"poll_interval": 0.1}, daemon=True)
        self._tick_thread = threading.Thread(target=self._ticker, daemon=True)

    # -- lifecycle -------------------------------------------------------------

    def start(self):
        self._serve_thread.start()
        self._tick_thread.start()
        return self

    def stop(self):
        self._stop.set()
        with self.store.lock:
            self.store.closing = True
            self.store.notify()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_all()
        if self._log_file:
            with self._log_lock:
                self._log_file.close()
                self._log_file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _ticker(self):
        while not self._stop.wait(0.05):
            with self.store.lock:
                self.store.tick()

    # -- request path ------------------------------------------------------------

    def _record(self, rec):
        with self._requests_lock:
            self.requests.append(rec)

    def clear_requests(self):
        with self._requests_lock:
            del self.requests[:]

    def _log_line(self, line):
        if self._log_file is None:
            return
        with self._log_lock:
            if self._log_file is not None:
                self._log_file.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), line))
                self._log_file.flush()

    def _serve(self, req):
        api = self.api
        clean = _clean_request_path(req.path)
        if clean != req.path:
            loc = urllib.parse.quote(clean) + ("?" + req.raw_query if req.raw_query else "")
            return self._redirect(req, loc)
        m = api.match(req.path)
        if m is None or m[0] == "/":
            if api.subtree_redirect(req.path):
                loc = urllib.parse.quote(req.path + "/") + ("?" + req.raw_query if req.raw_query else "")
                return self._redirect(req, loc)
            if req.path == "/":
                return text_response(200, "Consul Agent: UI disabled. To enable, set ui_config.enabled=true "
                                          "in the agent configuration and restart.")
            if "/v1/" in req.path:
                return text_response(404, "Invalid URL path: not a recognized HTTP API endpoint\n")
            return text_response(404, "Invalid URL path: if attempting to use the HTTP API, "
                                      "ensure the path starts with '/v1/'\n")
        _pattern, methods, fn = m
        extra = {"X-Consul-Default-Acl-Policy": "deny" if self.store.acl_enabled() else "allow"}
        if req.method == "OPTIONS" and methods:
            return Response(200, b"", None, dict(extra, Allow=",".join(["OPTIONS"] + methods)))
        if methods and req.method not in methods:
            extra["Allow"] = ",".join(["OPTIONS"] + methods)
            return text_response(405, "method %s not allowed" % req.method, extra)
        try:
            req.filter = None if fn == api.not_implemented else api.filter_for(_pattern, req)
            resp = fn(req)
        except HTTPError as e:
            resp = text_response(e.status, e.reason)
        resp.headers = dict(extra, **resp.headers)
        return resp

    @staticmethod
    def _redirect(req, location):
        if req.method in ("GET", "HEAD"):
            body = '<a href="%s">Moved Permanently</a>.\n\n' % location
            return Response(301, body.encode(), "text/html; charset=utf-8", {"Location": location})
        return Response(301, b"", None, {"Location": location})

    # -- views for tests -------------------------------------------------------------

    def agent_services(self):
        """/v1/agent/services as the management token sees it."""
        with self.store.lock:
            self.store.tick()
            return {sid: self.api.agent_service_json(self.store.agent_services[sid])
                    for sid in sorted(self.store.agent_services)}

    def agent_checks(self):
        """/v1/agent/checks as the management token sees it."""
        with self.store.lock:
            self.store.tick()
            return {cid: self.api.agent_check_json(self.store.agent_checks[cid])
                    for cid in sorted(self.store.agent_checks)}

    def catalog(self, dc=None):
        """{"Nodes": {node: Node}, "Services": {node: {service id: NodeService}},
        "Checks": {node: {check id: HealthCheck}}} for one datacenter."""
        with self.store.lock:
            self.store.tick()
            d = self.store.dcs[dc or self.store.datacenter]
            nodes = {n["Node"]: self.api._node_json(n) for n in d.nodes.values()}
            services = {d.nodes[l]["Node"]: {s["ID"]: self.api._node_service_json(s) for s in svcs.values()}
                        for l, svcs in d.services.items()}
            checks = {d.nodes[l]["Node"]: {c["CheckID"]: copy.deepcopy(c) for c in chks.values()}
                      for l, chks in d.checks.items()}
            return {"Nodes": nodes, "Services": services, "Checks": checks}

    def catalog_services(self, dc=None):
        """{service name: sorted tags} across the datacenter's catalog."""
        out = {}
        for svcs in self.catalog(dc)["Services"].values():
            for svc in svcs.values():
                out.setdefault(svc["Service"], set()).update(svc["Tags"])
        return {k: sorted(v) for k, v in sorted(out.items())}

    def kv(self, dc=None):
        """{key: {"Value": bytes or None, "Flags", "Session", "LockIndex",
        "CreateIndex", "ModifyIndex"}}"""
        with self.store.lock:
            self.store.tick()
            d = self.store.dcs[dc or self.store.datacenter]
            return {k: {"Value": e["Value"], "Flags": e["Flags"], "Session": e["Session"],
                        "LockIndex": e["LockIndex"], "CreateIndex": e["CreateIndex"],
                        "ModifyIndex": e["ModifyIndex"]} for k, e in sorted(d.kv.items())}

    def sessions(self, dc=None):
        """{session id: session as /v1/session/info shows it}"""
        with self.store.lock:
            self.store.tick()
            d = self.store.dcs[dc or self.store.datacenter]
            return {k: self.api._session_json(s) for k, s in sorted(d.sessions.items())}

    @property
    def index(self):
        """The current raft-like index (bumped by every write)."""
        with self.store.lock:
            return self.store.raft_index

    @property
    def node_name(self):
        return self.store.node_name

    @property
    def datacenter(self):
        return self.store.datacenter

    def set_check_status(self, check_id, status, output=""):
        """Stand in for the agent running a (non-TTL) check: sets its status
        and output as a check run would. The stand-in never runs HTTP, TCP,
        script, gRPC or other checks itself."""
        if status not in VALID_STATUSES:
            raise ValueError("status must be one of %s" % (VALID_STATUSES,))
        with self.store.lock:
            if check_id not in self.store.agent_checks:
                raise KeyError(check_id)
            self.store.update_agent_check(check_id, status, output)
            self.store.sync_agent_node()


def start_standin(port=0, acl_token=None, datacenter="dc1", node_name=None,
                  node_address="127.0.0.1", log=None, **kwargs):
    """Start a stand-in in background threads and return the StandIn object.

    Extra keyword arguments: extra_datacenters (iterable of names),
    session_ttl_min (seconds, Consul: 10), session_ttl_multiplier (Consul's
    timer is 2x the TTL; default 1), check_deregister_interval_min (seconds,
    Consul: 60), check_reap_interval (seconds, Consul: 30),
    enable_script_checks (bool), version (str), register_consul_service
    (bool), tls (a server-side ssl.SSLContext: serve https)."""
    return StandIn(port=port, acl_token=acl_token, datacenter=datacenter, node_name=node_name,
                   node_address=node_address, log=log, **kwargs).start()


def main(argv=None):
    p = argparse.ArgumentParser(description="Stand-in for Consul's HTTP API (tests only).")
    p.add_argument("--port", type=int, required=True, help="port on 127.0.0.1; 0 picks a free one")
    p.add_argument("--acl-token", default=None,
                   help="enable ACLs (default policy deny) with this management token")
    p.add_argument("--datacenter", default="dc1")
    p.add_argument("--extra-datacenter", action="append", default=[], metavar="NAME",
                   help="another (federated) datacenter that ?dc= and Datacenter may name; repeatable")
    p.add_argument("--node-name", default=None, help="agent node name (default: host name, as Consul)")
    p.add_argument("--node-address", default="127.0.0.1")
    p.add_argument("--log", default=None, help="append one line per request to this file")
    p.add_argument("--min-session-ttl", type=float, default=10.0, metavar="SECONDS",
                   help="smallest session TTL accepted (Consul: 10s)")
    p.add_argument("--session-ttl-multiplier", type=float, default=1.0,
                   help="sessions expire after TTL times this (Consul's timer uses 2)")
    p.add_argument("--check-deregister-interval-min", type=float, default=60.0, metavar="SECONDS",
                   help="floor for DeregisterCriticalServiceAfter (Consul: 1m)")
    p.add_argument("--check-reap-interval", type=float, default=30.0, metavar="SECONDS",
                   help="how often critical services are reaped (Consul: 30s)")
    p.add_argument("--enable-script-checks", action="store_true")
    p.add_argument("--version", dest="consul_version", default=STANDIN_VERSION)
    args = p.parse_args(argv)
    standin = start_standin(
        port=args.port, acl_token=args.acl_token, datacenter=args.datacenter,
        node_name=args.node_name, node_address=args.node_address, log=args.log,
        extra_datacenters=args.extra_datacenter, session_ttl_min=args.min_session_ttl,
        session_ttl_multiplier=args.session_ttl_multiplier,
        check_deregister_interval_min=args.check_deregister_interval_min,
        check_reap_interval=args.check_reap_interval,
        enable_script_checks=args.enable_script_checks, version=args.consul_version)
    done = threading.Event()

    def on_signal(_signum, _frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.stdout.write("listening on %s:%d\n" % (standin.host, standin.port))
    sys.stdout.flush()
    while not done.wait(0.5):
        pass
    standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
