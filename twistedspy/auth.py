# -*- test-case-name: tests.test_auth -*-
"""Who is asking: credentials from a request, checked through a `twisted.cred` Portal.

The HTTP side turns a request into credentials (`credentials_from`) and hands them with
the client address to the `Gatekeeper`, the one door every request passes. Behind it a
plain `Portal` asks a checker: `AllowAnonymousAccess` while Security is off, the bcrypt
`AccountsChecker` while it is on; the `ViewerRealm` hands out the `Viewer` avatar that
the dispatcher serves pages to.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
import ipaddress
import math
import secrets
import statistics
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import bcrypt
from twisted.cred.checkers import ANONYMOUS, AllowAnonymousAccess, ICredentialsChecker
from twisted.cred.credentials import (
    Anonymous,
    IAnonymous,
    ICredentials,
    IUsernamePassword,
    UsernamePassword,
)
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, DeferredSemaphore, fail, succeed
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface, implementer

from twistedspy.accounts import BCRYPT_MAX_PASSWORD, AccountsFile
from twistedspy.events import keeps, record

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from twistedspy.context import BlockingRunner
    from twistedspy.settings import Settings

#: the realm browsers show in their login prompt (RFC 7617 §2)
REALM = "twistedspy"
WWW_AUTHENTICATE = f'Basic realm="{REALM}", charset="UTF-8"'


class IViewer(Interface):
    """Whoever a page is served to."""

    user = Attribute("user name, or None when Security is off")


@implementer(IViewer)
@dataclass(frozen=True, slots=True)
class Viewer:
    user: str | None


def _nothing_to_release() -> None:
    """A Viewer holds no resources, so logging out has nothing to do."""


@implementer(IRealm)
class ViewerRealm:
    """Hands out a `Viewer` for the avatar ID a checker accepted."""

    def requestAvatar(
        self,
        avatarId: bytes | tuple[()],  # noqa: N803 (IRealm's own name)
        mind: object,
        *interfaces: type[Interface],
    ) -> tuple[type[Interface], object, Callable[[], None]]:
        if IViewer not in interfaces:
            raise NotImplementedError("ViewerRealm only hands out IViewer avatars")
        if avatarId == ANONYMOUS or not isinstance(avatarId, bytes):
            return (IViewer, Viewer(None), _nothing_to_release)
        return (IViewer, Viewer(avatarId.decode("utf-8")), _nothing_to_release)


def _password_matches(password: bytes, hashed: bytes) -> bool:
    """
    bcrypt's verdict; runs in a worker thread (about 300 ms at cost 12).

    Passwords are cut to 72 bytes, as `htpasswd -B` (and every bcrypt before pyca/bcrypt
    5, which raises ValueError instead) did when the hash was made: the same password
    that was typed to htpasswd logs in here. `twistedspy-passwd` refuses longer ones, so
    nobody sets a password whose tail is silently ignored.
    """
    try:
        return bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed)
    except ValueError:
        # "Invalid salt" for a malformed hash: a failed login, never an escaping error
        # (twisted.cred's FilePasswordDB lets it escape).
        return False


_BCRYPT_BASE64 = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _dummy_hash(cost: int) -> bytes:
    """
    A well-formed bcrypt hash that no password matches, made without hashing anything.

    Random salt and a random 31-character digest: `checkpw` spends the full cost on it
    and fails (a match would need a 2**-184 coincidence), so an unknown user takes as long
    as a wrong password for a real one.
    """
    digest = "".join(secrets.choice(_BCRYPT_BASE64) for _ in range(31))
    return bcrypt.gensalt(cost, prefix=b"2b") + digest.encode("ascii")


#: a verified login: (user, hash it matched, keyed digest of the password)
_CacheKey = tuple[str, bytes, bytes]

#: how many recent checks at the highest cost the padding of cheaper failures is taken from
_TIMING_SAMPLES = 9


@implementer(ICredentialsChecker)
class AccountsChecker:
    """
    Checks user names and passwords against the accounts file with bcrypt.

    bcrypt is slow on purpose, so it runs in the service's threads (never on the reactor,
    where five cost-12 logins froze every client for 1.6 s), at most `max_concurrent` at
    a time so that a burst of logins cannot take every thread. Successful logins are
    remembered (LRU, `cache_size` entries) so a browser's every request does not pay
    300 ms again; the entry is keyed by the hash too, so a changed password misses it.

    Every failed login costs as long as a check at the highest cost in the file, so no
    user name can be told apart by timing whatever costs the accounts use
    (docs/security.md): an unknown user is checked against a dummy hash of that cost, and
    a wrong password for a cheaper account is padded, in its worker thread, to the median
    of the recent checks at that cost (until there is one, the dummy check itself is run
    after it).
    """

    credentialInterfaces = (IUsernamePassword,)  # noqa: N815 (ICredentialsChecker's name)

    def __init__(
        self,
        accounts: AccountsFile,
        run_blocking: BlockingRunner,
        *,
        max_concurrent: int = 4,
        cache_size: int = 256,
    ) -> None:
        self._accounts = accounts
        self._run_blocking = run_blocking
        self._checks = DeferredSemaphore(max_concurrent)
        self._cache_size = cache_size
        self._verified: OrderedDict[_CacheKey, None] = OrderedDict()
        # The cache never holds a password, nor a plain hash of one: an HMAC under a key
        # that lives only in this process cannot be brute-forced from a memory dump.
        self._cache_secret = secrets.token_bytes(32)
        self._dummies: dict[int, bytes] = {}
        # seconds taken by recent checks at the highest cost, appended by worker threads
        # (deque.append is atomic)
        self._slowest: dict[int, deque[float]] = {}

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[bytes | tuple[()]]:
        username: bytes = credentials.username
        password: bytes = credentials.password
        if not password:
            # Refused for every user alike, so it says nothing about who exists.
            return fail(UnauthorizedLogin("empty password"))
        try:
            user = username.decode("utf-8")
        except UnicodeDecodeError:
            user = ""
        account = self._accounts.lookup(user) if user else None
        highest = self._accounts.highest_cost()
        if account is None:
            hashed, cost = self._dummy(highest), highest
        else:
            hashed, cost = account.hash, account.cost
        key = (user, hashed, hmac.digest(self._cache_secret, password, hashlib.sha256))
        if account is not None and key in self._verified:
            self._verified.move_to_end(key)
            return succeed(username)

        def decide(matched: bool) -> bytes | tuple[()]:
            if not matched or account is None:
                raise UnauthorizedLogin("wrong user name or password")
            self._remember(key)
            return username

        checked: Deferred[bool] = self._checks.run(
            self._run_blocking, self._check, password, hashed, cost, highest
        )
        return checked.addCallback(decide)

    def _check(self, password: bytes, hashed: bytes, cost: int, highest: int) -> bool:
        """
        bcrypt's verdict on a hash of `cost`, taking at least as long as a check at cost
        `highest` when it fails. Runs in a worker thread: the padding sleeps there, never
        on the reactor.
        """
        started = time.perf_counter()
        matched = _password_matches(password, hashed)
        elapsed = time.perf_counter() - started
        samples = self._slowest.setdefault(highest, deque(maxlen=_TIMING_SAMPLES))
        if cost >= highest:
            samples.append(elapsed)
        elif not matched:
            if samples:
                time.sleep(max(0.0, statistics.median(list(samples)) - elapsed))
            else:
                self._check(password, self._dummy(highest), highest, highest)
        return matched

    def _dummy(self, cost: int) -> bytes:
        if cost not in self._dummies:
            self._dummies[cost] = _dummy_hash(cost)
        return self._dummies[cost]

    def _remember(self, key: _CacheKey) -> None:
        self._verified[key] = None
        self._verified.move_to_end(key)
        while len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)


class LoginFailed(Exception):
    """Missing, malformed or wrong credentials: answered 401 with `WWW_AUTHENTICATE`."""


def credentials_from(
    login: str | None, password: str | None, authorization: str | None
) -> ICredentials:
    """
    The credentials a request carries: `?login=&password=` or `Authorization: Basic`.

    The query wins when it has a login, as the explicit choice of this one request (a
    browser keeps sending the Basic credentials it prompted for). No credentials at all
    are `Anonymous()`; anything malformed raises `LoginFailed`, never a silent fallback
    to anonymous.
    """
    if login or password:
        if not login:
            raise LoginFailed("a password was given without a login")
        return UsernamePassword(_utf8(login), _utf8(password or ""))
    if authorization is None:
        return Anonymous()
    return _basic_credentials(authorization)


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise LoginFailed("credentials are not valid UTF-8") from None


def _basic_credentials(authorization: str) -> UsernamePassword:
    # credentials = auth-scheme [ 1*SP token68 ]; the scheme is case-insensitive
    # (RFC 9110 §11.4, §11.1).
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise LoginFailed("only the Basic authentication scheme is supported")
    try:
        decoded = binascii.a2b_base64(token.strip().encode("ascii"), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error):
        raise LoginFailed("malformed Basic credentials") from None
    # RFC 7617 §2: user-id ":" password, the user-id holds no colon, so split at the
    # first; §2.1: with charset="UTF-8" announced, both are UTF-8.
    user_id, colon, password = decoded.partition(b":")
    if not colon:
        raise LoginFailed("malformed Basic credentials")
    try:
        user_id.decode("utf-8")
        password.decode("utf-8")
    except UnicodeDecodeError:
        raise LoginFailed("Basic credentials are not valid UTF-8") from None
    return UsernamePassword(user_id, password)


class LoginThrottled(Exception):
    """Too many failed logins from this address, its network or everyone: answered 429."""

    def __init__(self, retry_after: int, budget: str = "address") -> None:
        super().__init__(f"too many failed logins; retry after {retry_after} s")
        self.retry_after = retry_after
        #: which budget was spent: "address", "network" or "everyone"
        self.budget = budget


@functools.lru_cache(maxsize=4096)
def _budget_keys(client: str) -> tuple[str, str]:
    """
    The address and the network failures from `client` are counted against.

    An IPv6 client usually holds a whole /64, so counting single addresses would give it
    2**64 fresh budgets; its network is the /56 a home or small site is typically given
    (RFC 6177 §3). An IPv4 client's network is its /24. An IPv4-mapped IPv6 address is
    its IPv4 address. A client that is not an IP address (a UNIX socket's peer) is its
    own network. Remembered for the clients seen last: parsing an address costs more
    than the rest of a throttle check.
    """
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client, client
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv6Address):
        return (
            str(ipaddress.IPv6Network((address, 64), strict=False)),
            str(ipaddress.IPv6Network((address, 56), strict=False)),
        )
    return str(address), str(ipaddress.IPv4Network((address, 24), strict=False))


class _SlidingWindow:
    """
    Failures per key within `window` seconds, and attempts still being checked.

    Attempts in flight count as failures until they end, or a client could fire a
    hundred guesses at once before the first one fails. Memory stays bounded: keys with
    no failure in the window are dropped, and at most `max_keys` are kept (the stalest
    dropped first).
    """

    def __init__(self, budget: int, window: float, max_keys: int) -> None:
        self.budget = budget
        self._window = window
        self._max_keys = max_keys
        # key -> times of its failures, the key failing most recently last
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._pending: dict[str, int] = {}

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may try once more; 0 when it may now."""
        if not self.failures and not self._pending and self.budget > 0:
            return 0.0  # nobody has failed or is trying: every login's usual case
        self._forget_before(now - self._window)
        failures = self.failures.get(key, deque())
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        excess = len(failures) + self._pending.get(key, 0) - self.budget + 1
        if excess <= 0:
            return 0.0
        if excess > len(failures):
            # Attempts in flight fill the budget: they end within a few seconds.
            return 1.0
        # Free again once `excess` of its failures have left the window.
        return failures[excess - 1] + self._window - now

    def begin(self, key: str) -> None:
        self._pending[key] = self._pending.get(key, 0) + 1

    def end(self, key: str, *, failed: bool, now: float) -> None:
        pending = self._pending.get(key, 0) - 1
        if pending > 0:
            self._pending[key] = pending
        else:
            self._pending.pop(key, None)
        if not failed:
            return
        failures = self.failures.pop(key, None)
        if failures is None:
            failures = deque(maxlen=self.budget)
        failures.append(now)
        self.failures[key] = failures
        while len(self.failures) > self._max_keys:
            self.failures.popitem(last=False)

    def _forget_before(self, cutoff: float) -> None:
        # Ordered by latest failure: stop at the first key still inside the window.
        while self.failures:
            key, failures = next(iter(self.failures.items()))
            if failures and failures[-1] > cutoff:
                return
            del self.failures[key]


class LoginThrottle:
    """
    Refuses logins with 429 once a budget of failures within `window` seconds is spent:
    `max_failures` per address, `network_failures` per network (/24, IPv6 /56), and
    `global_failures` for everyone together.

    Each budget is a sliding window: a failure counts for `window` seconds, and each one
    that leaves it lets one more attempt through. While throttled, the password is not
    checked at all, so the right one and a wrong one get the same 429 after the same
    time (no oracle); the right one gets in once the `Retry-After` has passed. A success
    does not wipe any failures (one known account must not buy unlimited guesses at
    others). The global budget caps guessing from many networks at once; when an attack
    spends it, every new login waits for it to refill (cached logins are no exception:
    a 200 for a cached password would be an oracle that skips the throttle).
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        max_failures: int = 10,
        network_failures: int = 12,
        global_failures: int = 100,
        window: float = 300.0,
        max_clients: int = 10_000,
    ) -> None:
        self._clock = clock
        self._budgets = (
            ("address", _SlidingWindow(max_failures, window, max_clients)),
            ("network", _SlidingWindow(network_failures, window, max_clients)),
            ("everyone", _SlidingWindow(global_failures, window, 1)),
        )

    def _keys(self, client: str) -> tuple[str, str, str]:
        address, network = _budget_keys(client)
        return address, network, ""

    def check(self, client: str) -> tuple[str, str, str]:
        """
        Raise `LoginThrottled` while a budget `client` counts against is spent; else its
        keys. Counts nothing: alone, it is the check for a login that cannot fail (one a
        connection reuses, `Gatekeeper.admit`).
        """
        now = self._clock.seconds()
        keys = self._keys(client)
        waits = [
            (window.wait(key, now), name)
            for (name, window), key in zip(self._budgets, keys, strict=True)
        ]
        wait, budget = max(waits)
        if wait > 0:
            raise LoginThrottled(max(1, math.ceil(wait)), budget)
        return keys

    def begin(self, client: str) -> None:
        """Start an attempt from `client`, or raise `LoginThrottled`; then `end` it."""
        keys = self.check(client)
        for (_, window), key in zip(self._budgets, keys, strict=True):
            window.begin(key)

    def end(self, client: str, *, failed: bool) -> None:
        """End an attempt `begin` let through, counting it if it failed."""
        now = self._clock.seconds()
        for (_, window), key in zip(self._budgets, self._keys(client), strict=True):
            window.end(key, failed=failed, now=now)


class TrustedProxies:
    """
    The proxies whose `X-Forwarded-For` is believed; none unless configured.

    A request that came through them is counted against, and journalled with, the client
    they name instead of the proxy's own address. The header is read from the right (each
    proxy appends the address it was connected from, RFC 7239 §5.2 for its successor
    `Forwarded`): the client is the first address, from the right, that is not itself a
    trusted proxy. Anything left of it was written by the client and proves nothing.
    """

    def __init__(self, networks: Sequence[str] = ()) -> None:
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def client_of(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client a connection from `peer` with these X-Forwarded-For values is for."""
        if not self._networks or not forwarded_for:
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        client = peer
        for hop in reversed(hops):
            if not self._trusted(client):
                break
            try:
                client = str(ipaddress.ip_address(hop))
            except ValueError:
                break  # not an address: the proxy that passed it on is the client we know
        return client


#: what every request presents while Security is off (Anonymous holds no state)
_ANONYMOUS = Anonymous()


class ConnectionLogin:
    """
    The last login one connection made through the Portal, for its next requests that
    carry exactly the same credentials (docs/security.md, "One login per connection").

    It holds a keyed digest of the credentials as the request carried them, never the
    password; the accounts file's generation when they were checked; how many more
    requests may reuse it; and the Viewer. Only a login the Portal let in is kept: a
    failed one never is, and any other credentials on the connection forget it.
    """

    # Class attributes as the empty state, and no __init__: one is made for every
    # connection, most of which (with `Connection: close`) never use it.
    digest: bytes = b""
    generation: int = -1
    uses_left: int = 0
    viewer: Viewer | None = None

    def forget(self) -> None:
        self.digest, self.generation, self.uses_left, self.viewer = b"", -1, 0, None


#: the digest Security off's one anonymous login is kept under
_ANONYMOUS_DIGEST = b"anonymous"


def _user_of(credentials: ICredentials) -> str | None:
    if IUsernamePassword.providedBy(credentials):
        username: bytes = credentials.username
        return username.decode("utf-8", "replace")
    return None


class Gatekeeper:
    """The one door every request passes: Portal + throttle + journal."""

    def __init__(
        self,
        portal: Portal,
        throttle: LoginThrottle,
        log: Logger,
        *,
        ignore_credentials: bool = False,
        proxies: TrustedProxies | None = None,
        accounts: AccountsFile | None = None,
        reuse: int = 0,
    ) -> None:
        self._portal = portal
        self._throttle = throttle
        self._log = log
        self._proxies = proxies if proxies is not None else TrustedProxies()
        self._accounts = accounts
        #: requests a connection may reuse a login for (CredentialReuse); 0: none
        self._reuse = reuse
        # Connections keep an HMAC of their credentials under a key that lives only in
        # this process: a memory dump holds nothing to brute-force a password from.
        self._reuse_secret = secrets.token_bytes(32)
        #: Security off: whatever a request carries, it is let in as anonymous
        self._ignore_credentials = ignore_credentials
        #: whether anyone reads the debug events of anonymous and reused logins (the
        #: journal in verbose mode does; its mode is fixed for its life): asked once, not
        #: per request
        self._journal_anonymous = keeps(log, "authorization", LogLevel.debug)

    def health_problem(self) -> str | None:
        """Why nobody can log in now (one line for `/-/healthy`), or None."""
        return None if self._accounts is None else self._accounts.health_problem()

    def admit(
        self,
        secrets: Mapping[str, str],
        authorization: Callable[[], str | None],
        peer: str,
        forwarded_for: Sequence[str] = (),
        kept: ConnectionLogin | None = None,
    ) -> Viewer | Deferred[Viewer]:
        """
        The Viewer for what a request carries: `login` and `password` in `secrets`, or
        the `Authorization` header `authorization` reads (see `credentials_from`). With
        Security off nothing is read, not even an Authorization meant for something else,
        so nothing can fail: this is the one place that decides it.

        `kept` is the connection's memory of its last login: the same credentials again,
        within CredentialReuse requests and while the accounts file is unchanged, get its
        Viewer at once (the throttle still asked), without the Portal; anything else goes
        through the Portal, and a login it lets in is kept.
        """
        reuse = self._reuse if kept is not None else 0
        if self._ignore_credentials:
            if not reuse:
                return self.login(_ANONYMOUS, peer, forwarded_for)
            assert kept is not None
            if kept.uses_left > 0 and kept.viewer is not None:
                kept.uses_left -= 1
                if self._journal_anonymous:
                    client = self._proxies.client_of(peer, forwarded_for)
                    self._journal(None, client, "ok", LogLevel.debug)
                return kept.viewer
            return self.login(_ANONYMOUS, peer, forwarded_for).addCallback(
                self._remember, kept, _ANONYMOUS_DIGEST, 0
            )
        login, password = secrets.get("login"), secrets.get("password")
        header = None if login or password else authorization()
        digest = b""
        if reuse and (login or password or header is not None):
            assert kept is not None
            digest = self._digest(login, password, header)
            if kept.viewer is not None:
                if (
                    kept.uses_left > 0
                    and kept.generation == self._generation()
                    and hmac.compare_digest(kept.digest, digest)
                ):
                    return self._reused(kept, peer, forwarded_for)
                kept.forget()
        try:
            credentials = credentials_from(login, password, header)
        except LoginFailed as error:
            return fail(error)
        if not digest:
            return self.login(credentials, peer, forwarded_for)
        assert kept is not None
        # The generation as it was before the check: a file changed meanwhile makes the
        # kept login stale at once.
        generation = self._generation()
        return self.login(credentials, peer, forwarded_for).addCallback(
            self._remember, kept, digest, generation
        )

    def _digest(self, login: str | None, password: str | None, header: str | None) -> bytes:
        """A keyed digest of the credentials exactly as the request carried them."""
        if header is not None:
            material = b"h" + header.encode("utf-8", "surrogatepass")
        else:
            user = (login or "").encode("utf-8", "surrogatepass")
            secret = (password or "").encode("utf-8", "surrogatepass")
            material = b"q%d:" % len(user) + user + secret
        return hmac.digest(self._reuse_secret, material, hashlib.sha256)

    def _generation(self) -> int:
        return 0 if self._accounts is None else self._accounts.generation()

    def _reused(
        self, kept: ConnectionLogin, peer: str, forwarded_for: Sequence[str]
    ) -> Viewer | Deferred[Viewer]:
        """The kept login once more: throttled as every login is, journalled in verbose mode."""
        viewer = kept.viewer
        assert viewer is not None
        client = self._proxies.client_of(peer, forwarded_for)
        via = {"via": peer} if client != peer else {}
        try:
            self._throttle.check(client)
        except LoginThrottled as error:
            self._journal(
                viewer.user, client, "throttled", LogLevel.warn, budget=error.budget, **via
            )
            return fail(error)
        kept.uses_left -= 1
        if self._journal_anonymous:
            self._journal(viewer.user, client, "ok", LogLevel.debug, **via)
        return viewer

    def _remember(
        self, viewer: Viewer, kept: ConnectionLogin, digest: bytes, generation: int
    ) -> Viewer:
        """A login the Portal let in: kept for the connection's next CredentialReuse requests."""
        kept.digest, kept.generation, kept.viewer = digest, generation, viewer
        kept.uses_left = self._reuse
        return viewer

    def login(
        self, credentials: ICredentials, peer: str, forwarded_for: Sequence[str] = ()
    ) -> Deferred[Viewer]:
        """
        The Viewer for these credentials from a connection with `peer`, through the
        proxies named in `forwarded_for` (X-Forwarded-For values, believed only from
        trusted proxies); fails with LoginThrottled or LoginFailed.
        """
        client = self._proxies.client_of(peer, forwarded_for)
        # the proxy it came through, beside the client it named
        via = {"via": peer} if client != peer else {}
        if self._ignore_credentials:
            # Security off: through the Portal as anonymous, all the same, without the
            # throttle's bookkeeping (nothing to guess) and without the closures of the
            # general case below (every connection's first request, or every request
            # with CredentialReuse 0).
            attempt = self._portal.login(_ANONYMOUS, None, IViewer)
            return attempt.addCallbacks(
                self._anonymous_admitted,
                self._anonymous_refused,
                callbackArgs=(client,),
                errbackArgs=(client,),
            )
        user = _user_of(credentials)
        # Asking without credentials is how a browser learns it must prompt (RFC 9110
        # §11.6.1): answered 401, but not a failed guess to throttle.
        guessing = not IAnonymous.providedBy(credentials)
        if guessing:
            try:
                self._throttle.begin(client)
            except LoginThrottled as error:
                self._journal(user, client, "throttled", LogLevel.warn, budget=error.budget, **via)
                return fail(error)

        def admitted(result: tuple[type[Interface], object, Callable[[], None]]) -> Viewer:
            _, avatar, _ = result
            assert isinstance(avatar, Viewer)
            if guessing:
                self._throttle.end(client, failed=False)
            # Security off lets every request in anonymously: debug detail, which the
            # journal keeps in verbose mode only.
            level = LogLevel.info if guessing else LogLevel.debug
            self._journal(user, client, "ok", level, **via)
            return avatar

        def refused(failure: Failure) -> Failure:
            unauthorized = isinstance(failure.value, UnauthorizedLogin | UnhandledCredentials)
            if guessing:
                self._throttle.end(client, failed=unauthorized)
            if not unauthorized:
                # the checker broke (a thread time-out, say): not the client's fault
                self._journal(user, client, "error", LogLevel.error, **via)
                return failure
            outcome = "failed" if guessing else "missing"
            level = LogLevel.warn if guessing else LogLevel.info
            self._journal(user, client, outcome, level, **via)
            raise LoginFailed(
                "wrong user name or password" if guessing else "credentials required"
            )

        attempt = self._portal.login(credentials, None, IViewer)
        return attempt.addCallbacks(admitted, refused)

    def _anonymous_admitted(
        self, result: tuple[type[Interface], object, Callable[[], None]], client: str
    ) -> Viewer:
        avatar = result[1]
        assert isinstance(avatar, Viewer)
        # Every request with Security off: debug detail, kept in verbose mode only.
        if self._journal_anonymous:
            self._journal(None, client, "ok", LogLevel.debug)
        return avatar

    def _anonymous_refused(self, failure: Failure, client: str) -> Failure:
        # AllowAnonymousAccess admits anonymous credentials, but the Portal is the judge.
        if not isinstance(failure.value, UnauthorizedLogin | UnhandledCredentials):
            self._journal(None, client, "error", LogLevel.error)
            return failure
        self._journal(None, client, "missing", LogLevel.info)
        raise LoginFailed("credentials required")

    def _journal(
        self, user: str | None, client: str, outcome: str, level: LogLevel, **extra: str
    ) -> None:
        record(
            self._log, "authorization", level, user=user, client=client, outcome=outcome, **extra
        )


def make_gatekeeper(
    settings: Settings, clock: IReactorTime, run_blocking: BlockingRunner, log: Logger
) -> Gatekeeper:
    """
    The Gatekeeper for these settings; `AccountsError` (stop start-up) if the accounts
    file cannot be used while Security is on.
    """
    throttle = LoginThrottle(clock)
    if not settings.security:
        portal = Portal(ViewerRealm(), [AllowAnonymousAccess()])
        return Gatekeeper(
            portal, throttle, log, ignore_credentials=True, reuse=settings.credential_reuse
        )
    accounts = AccountsFile(settings.account_file, log=log)
    checker = AccountsChecker(accounts, run_blocking)
    return Gatekeeper(
        Portal(ViewerRealm(), [checker]),
        throttle,
        log,
        proxies=TrustedProxies(settings.trusted_proxies),
        accounts=accounts,
        reuse=settings.credential_reuse,
    )
