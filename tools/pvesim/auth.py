"""Users, API tokens, tickets and CSRF tokens shaped like PVE's.

Privileges are global per user/token (no per-path ACL tree): that is enough to reproduce the
403 responses a load balancer meets (an audit-only account trying to migrate).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
import urllib.parse

TICKET_LIFETIME = 7200

ALL_PRIVS = (
    "Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit",
    "Group.Allocate", "Mapping.Audit", "Mapping.Modify", "Mapping.Use", "Permissions.Modify",
    "Pool.Allocate", "Pool.Audit", "Realm.Allocate", "Realm.AllocateUser", "SDN.Allocate", "SDN.Audit", "SDN.Use",
    "Sys.AccessNetwork", "Sys.Audit", "Sys.Console", "Sys.Incoming", "Sys.Modify", "Sys.PowerMgmt", "Sys.Syslog",
    "User.Modify", "VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone", "VM.Config.CDROM", "VM.Config.CPU",
    "VM.Config.Cloudinit", "VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory", "VM.Config.Network",
    "VM.Config.Options", "VM.Console", "VM.GuestAgent.Audit", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt",
    "VM.GuestAgent.FileWrite", "VM.GuestAgent.Unrestricted", "VM.Migrate", "VM.PowerMgmt", "VM.Replicate",
    "VM.Snapshot", "VM.Snapshot.Rollback",
)

# Which privileges show up under which key of the ticket's "cap" object (PVE groups them the same way).
CAP_GROUPS = {
    "vms": ("VM.", "Permissions.Modify"),
    "storage": ("Datastore.", "Permissions.Modify"),
    "nodes": ("Sys.", "Permissions.Modify"),
    "access": ("User.", "Group.", "Realm.", "Permissions.Modify"),
    "dc": ("Sys.Audit", "Sys.Modify", "SDN.Audit"),
    "sdn": ("SDN.", "Permissions.Modify"),
    "mapping": ("Mapping.", "Permissions.Modify"),
}

PERMISSION_PATHS = ("/", "/access", "/nodes", "/pool", "/sdn", "/storage", "/vms", "/mapping")

DEFAULT_USERS = [
    {
        "userid": "root@pam", "password": "pvesim", "privs": "all",
        "tokens": [{"tokenid": "proxlb", "secret": "00000000-0000-4000-8000-000000000001"}],
    },
    {
        "userid": "audit@pve", "password": "audit",
        "privs": ["Sys.Audit", "VM.Audit", "Datastore.Audit", "Pool.Audit"],
        "tokens": [{"tokenid": "ro", "secret": "00000000-0000-4000-8000-000000000002"}],
    },
]


class AuthError(Exception):
    """Authentication failed; the server answers 401 with the given reason and an empty body."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Identity:
    """The authenticated caller of one request."""

    def __init__(self, userid: str, privs: frozenset, tokenid: str | None = None, via_ticket: bool = False):
        self.userid = userid
        self.privs = privs
        self.tokenid = tokenid
        self.via_ticket = via_ticket

    @property
    def task_user(self) -> str:
        """The user field written into UPIDs (``root@pam!proxlb`` for tokens)."""
        return "%s!%s" % (self.userid, self.tokenid) if self.tokenid else self.userid

    def has(self, priv: str) -> bool:
        return priv in self.privs


def _privset(value) -> frozenset:
    if value == "all" or value is None:
        return frozenset(ALL_PRIVS)
    return frozenset(value)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Authenticator:
    """Checks passwords, tickets, CSRF tokens and API tokens against the scenario's users."""

    def __init__(self, users: list | None = None):
        # One secret per server lifetime, so tickets survive a scenario reset.
        self._secret = os.urandom(32)
        self.users: dict = {}
        self.tokens: dict = {}
        self.set_users(users)

    def set_users(self, users: list | None) -> None:
        self.users = {}
        self.tokens = {}
        for user in users or DEFAULT_USERS:
            userid = user["userid"]
            privs = _privset(user.get("privs", "all"))
            self.users[userid] = {"password": user.get("password"), "privs": privs, "enable": user.get("enable", 1)}
            for token in user.get("tokens", []):
                full = "%s!%s" % (userid, token["tokenid"])
                # privsep tokens may only hold a subset of the user's privileges.
                token_privs = _privset(token["privs"]) & privs if "privs" in token else privs
                self.tokens[full] = {"secret": token["secret"], "privs": token_privs, "userid": userid,
                                     "tokenid": token["tokenid"]}

    # -- tickets --------------------------------------------------------------------------------
    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._secret, text.encode("utf-8"), hashlib.sha512).digest())

    def make_ticket(self, userid: str, now: float | None = None) -> str:
        stamp = "%08X" % int(now if now is not None else time.time())
        plain = "PVE:%s:%s" % (urllib.parse.quote(userid, safe="@!"), stamp)
        return "%s::%s" % (plain, self._sign(plain))

    def make_csrf(self, userid: str, now: float | None = None) -> str:
        stamp = "%08X" % int(now if now is not None else time.time())
        digest = hmac.new(self._secret, ("csrf:%s:%s" % (stamp, userid)).encode("utf-8"), hashlib.sha256).digest()
        return "%s:%s" % (stamp, _b64(digest).rstrip("="))

    def verify_ticket(self, ticket: str) -> str | None:
        """Return the userid of a valid, unexpired ticket."""
        ticket = urllib.parse.unquote(ticket or "")
        if "::" not in ticket:
            return None
        plain, signature = ticket.split("::", 1)
        parts = plain.split(":")
        if len(parts) != 3 or parts[0] != "PVE":
            return None
        if not hmac.compare_digest(signature, self._sign(plain)):
            return None
        try:
            age = time.time() - int(parts[2], 16)
        except ValueError:
            return None
        if age > TICKET_LIFETIME or age < -300:
            return None
        userid = urllib.parse.unquote(parts[1])
        return userid if userid in self.users else None

    def verify_csrf(self, token: str | None, userid: str) -> bool:
        if not token or ":" not in token:
            return False
        stamp = token.split(":", 1)[0]
        try:
            age = time.time() - int(stamp, 16)
        except ValueError:
            return False
        if age > TICKET_LIFETIME or age < -300:
            return False
        return hmac.compare_digest(token, self.make_csrf(userid, int(stamp, 16)))

    def login(self, username: str, password: str, realm: str | None = None) -> str | None:
        """Password (or ticket renewal) login; returns the userid or None."""
        if realm and "@" not in username:
            username = "%s@%s" % (username, realm)
        user = self.users.get(username)
        if user is None or not user["enable"]:
            return None
        if password and password.startswith("PVE:"):
            return username if self.verify_ticket(password) == username else None
        if user["password"] is not None and hmac.compare_digest(str(password), str(user["password"])):
            return username
        return None

    # -- per request ----------------------------------------------------------------------------
    def identify(self, cookie_ticket: str | None, authorization: str | None) -> Identity:
        """Resolve the caller from the cookie ticket or the API token header; raises AuthError."""
        if cookie_ticket:
            userid = self.verify_ticket(cookie_ticket)
            if userid is None:
                raise AuthError("permission denied - invalid PVE ticket")
            return Identity(userid, self.users[userid]["privs"], via_ticket=True)
        if authorization:
            token_value = _parse_token_header(authorization)
            if token_value is None:
                if authorization.startswith("PVEAuthCookie="):
                    return self.identify(authorization.split("=", 1)[1], None)
                raise AuthError("No ticket")
            full, _sep, secret = token_value.rpartition("=")
            token = self.tokens.get(full)
            if token is None or not hmac.compare_digest(secret, token["secret"]):
                raise AuthError("Authentication failed!")
            if not self.users[token["userid"]]["enable"]:
                raise AuthError("Authentication failed!")
            return Identity(token["userid"], token["privs"], tokenid=token["tokenid"])
        raise AuthError("No ticket")

    def ticket_response(self, userid: str, clustername: str | None) -> dict:
        privs = self.users[userid]["privs"]
        data = {
            "username": userid,
            "ticket": self.make_ticket(userid),
            "CSRFPreventionToken": self.make_csrf(userid),
            "cap": capabilities(privs),
        }
        if clustername and "Sys.Audit" in privs:
            data["clustername"] = clustername
        return data


def _parse_token_header(value: str) -> str | None:
    # PVE accepts "PVEAPIToken=<id>=<secret>" and "PVEAPIToken <id>=<secret>".
    for prefix in ("PVEAPIToken=", "PVEAPIToken "):
        index = value.find(prefix)
        if index == 0 or (index > 0 and value[index - 1].isspace()):
            rest = value[index + len(prefix):]
            return rest.split(";", 1)[0].strip()
    return None


def capabilities(privs: frozenset) -> dict:
    cap = {}
    for group, selectors in CAP_GROUPS.items():
        entries = {}
        for priv in sorted(privs):
            if any(priv == sel or (sel.endswith(".") and priv.startswith(sel)) for sel in selectors):
                entries[priv] = 1
        cap[group] = entries
    return cap


def permissions(privs: frozenset, path: str | None = None) -> dict:
    """Shape of GET /access/permissions: path -> {priv: 1}."""
    paths = [path] if path else list(PERMISSION_PATHS)
    return {p: {priv: 1 for priv in sorted(privs)} for p in paths}
