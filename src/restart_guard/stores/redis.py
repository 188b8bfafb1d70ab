"""Markers in Redis, for containers without a durable disk and for several instances of one bot.

Usage::

    from restart_guard.stores.redis import RedisStore

    protect(store="redis://redis.internal:6379/0")          # or $RESTART_GUARD_URL
    protect(store=RedisStore("redis://localhost:6379/0", namespace="mybot"))
    protect(store=RedisStore(redis.Redis(...)))              # an existing sync client

A URL given to ``protect()`` (or in ``$RESTART_GUARD_URL``) gets a
``RedisStore`` namespaced for the bot, wrapped in a
:class:`~restart_guard.stores.fallback.FallbackStore` over the bot's local
marker directory (``marker_dir`` or the default one), so a Redis outage at
shutdown falls back to the disk. A store object is used as it is: wrap it
yourself if you want the fallback.

Needs the ``redis`` extra (``pip install 'restart-guard[redis]'``) and Redis
6.2 or later (``SET … GET``). One Redis server or a primary with replicas
(Sentinel: pass ``sentinel.master_for(...)``); Redis Cluster is not
supported, because the claim script reads keys it discovers while it runs.

A store built from a URL gets short timeouts (1 s to connect, 2 s to answer,
one quick retry) so that a dead Redis cannot eat the drain time; query
options in the URL (``?socket_timeout=5``) override them. A client you pass
in is used as configured and is not closed by :meth:`RedisStore.close`.
``$RESTART_GUARD_LEASE`` (seconds) sets the lease (below) of a store whose
constructor is not given one, a store ``protect()`` builds from a URL
included.

With Redis ACLs the bot's user needs its namespace and these command
categories: ``ACL SETUSER mybot on >password ~restart-guard:* +@hash +@set
+@string +@keyspace +@scripting +@transaction +@connection``.

Markers change hands only in ``claim()``. The guard claims at start-up and
again every 30 s while the bot runs (``$RESTART_GUARD_RECLAIM_INTERVAL``):
what an old blue/green instance still leaves behind when it exits after the
new one started is resumed once its lease is gone, and so are markers that
could not be claimed because Redis was unreachable at start-up.

Keys
----
Everything lives under the namespace prefix ``{ns}`` (``protect()`` uses
``restart-guard:<platform>-<hash of the bot's identity>``); nothing else in
the database is read or written.

``{ns}:m:{owner}`` (hash)
    The markers one process owns: field = the conversation's key (a hash,
    never a raw chat id), value = ``Marker.to_json()`` as JSON. Markers
    record their owner too, but the hash a marker sits in is what decides.
``{ns}:lease:{owner}`` (string, TTL ``lease`` seconds, default 30)
    The owner is alive while this key exists. Set by ``open()``, renewed
    every ``lease / 3`` s by a daemon thread and by every commit, deleted by
    ``close()``. A SIGKILLed or frozen process stops renewing it, so its
    markers become claimable ``lease`` seconds later at most.
``{ns}:owners`` (set)
    Owners that may hold a marker hash; added by the commit that first puts
    a marker, removed when the hash is claimed or closed empty.
``{ns}:resuming:{owner}`` (set, transient)
    Keys moved to ``owner`` by a claim whose second step has not finished
    yet; makes ``claim()`` safe to retry after a lost reply.
``{ns}:corrupt`` (hash, only if needed)
    Records that did not parse when claimed (garbage, a newer format
    version), set aside for inspection instead of being deleted.

Operations
----------
``commit(puts, removes)``
    One ``MULTI``/``EXEC`` round trip however many markers: renew the lease,
    ``SADD`` the owner, ``HSET`` the puts, ``HDEL`` the removes.
``claim()``
    One Lua script (atomic, so two processes never take the same marker)
    renews our lease, then for every registered owner without a lease moves
    its whole hash into ours (a conversation present twice keeps the record
    with the most attempts, then the latest update) and returns what it
    moved. A second ``MULTI`` round trip rewrites those markers with our
    owner and phase ``resuming`` and sets aside the ones that do not parse.
    Owners whose lease is alive — an old blue/green instance still
    draining — are left alone. A claimer that dies before finishing loses
    its lease in turn, and the markers are claimable again.
``load()``
    Every marker with ``held`` = its owner's lease is alive.
``close()``
    Stops the renewal, deletes the lease (what is still marked is
    claimable at once by the next start), unregisters the owner if it holds
    nothing, and closes the connections it opened.

What the bot holds survives a Redis that forgets it
---------------------------------------------------
The store keeps a copy of the records of the markers its process holds.
Every lease renewal (every ``lease / 3`` s) and every commit also asks how
many markers the process's hash holds (``HLEN``, in the same round trip).
If Redis has fewer than the process holds — Redis restarted without
persistence, a failover lost writes, or another instance claimed them after
this process's lease ran out — they are written again at once (with the
"draining" note, if it was set) and one warning says how many were lost.
A conversation is never left unmarked while its process still runs it;
in the last case it may be resumed twice, never zero times.

Errors (unreachable, timeout, refused, read-only replica, wrong password)
surface as :class:`~restart_guard.stores.base.StoreError` naming the server
and what to check; the guard logs them and retries. To fall back to a local
directory when Redis is down at shutdown, wrap the store in
:class:`~restart_guard.stores.fallback.FallbackStore`.

What survives what
------------------
A commit returns once Redis has applied it in memory, so a crash of the
*bot* never loses a marker. What a crash of *Redis* loses depends on its
persistence settings (``appendonly``, ``appendfsync``, ``save``):

=========================  ==========  =================  =================  ==================
Redis persistence          bot crash   Redis process      Redis host crash   failover to a
                                       crash (kill -9)    (power, kernel)    replica
=========================  ==========  =================  =================  ==================
AOF, appendfsync always    nothing     nothing            nothing            unreplicated [2]_
AOF, appendfsync everysec  nothing     nothing [1]_       last ~1 s (≤ 2 s)  unreplicated [2]_
RDB snapshots only         nothing     all since the      all since the      unreplicated [2]_
                                       last snapshot      last snapshot
no persistence             nothing     everything         everything         everything [3]_
=========================  ==========  =================  =================  ==================

.. [1] Redis writes the AOF before it answers; only while a slow disk is still
   busy with the previous fsync does it postpone that write, by up to 2 s.
.. [2] Replication is asynchronous: what the old primary acknowledged but had
   not yet sent (usually milliseconds of writes) is lost. This store does not
   ``WAIT`` for replicas.
.. [3] If the primary restarts empty and its replicas resync from it. If a
   replica is promoted instead, only unreplicated writes are lost.

A clean Redis shutdown (``SHUTDOWN``, SIGTERM) flushes the AOF and, when save
points are set, writes a snapshot: a planned Redis restart loses nothing in
the first three rows.

**Recommended:** ``appendonly yes`` with ``appendfsync everysec``. Losing
that last second takes two failures: Redis's host dies, *and* the bot dies
before those conversations finish (a bot that keeps running simply finishes
them). Where the bot and Redis share a host (one VM, one pod), one power loss
is both failures: use ``appendfsync always`` there — the guarantee the
directory store gives; restart-guard writes in batches, so the extra fsyncs
are few. Never point restart-guard at a Redis without persistence that
restarts automatically.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

try:
    import redis
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the Redis marker store needs redis-py: pip install 'restart-guard[redis]'"
    ) from None
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.typing import EncodableT, FieldT

from .._env import seconds_from_env
from .._marker import Marker, Phase, marker_json_text
from .base import UNREADABLE, StoredMarker, StoreError

__all__ = ["DEFAULT_LEASE", "ENV_LEASE", "RedisStore", "find_namespaces"]

log = logging.getLogger("restart_guard")

# A Redis that does not answer must not eat the drain (Docker gives 10 s in all):
# at worst two 1 s connects and a 0.5 s backoff before the error, and the fallback.
# Retrying is safe: every write here is idempotent, the claim script included.
_CONNECT_TIMEOUT = 1.0
_TIMEOUT = 2.0
_RETRY = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 1)
#: Seconds after a process's death (without ``close()``) until its markers are claimable.
DEFAULT_LEASE = 30.0
#: Overrides :data:`DEFAULT_LEASE` for stores not given a lease (``protect(store=URL)``).
ENV_LEASE = "RESTART_GUARD_LEASE"
_MIN_LEASE = 0.1


# The "draining" record outlives its owner only as long as a marker could matter
# (max_age defaults to 24 h; a week leaves room for a larger one).
_DRAINING_TTL_MS = 7 * 24 * 3600 * 1000

# KEYS: registry, our hash, our resuming set, our lease. ARGV: namespace, owner, lease ms.
# Returns {moved: [field, record, ...], skipped: [key, ...]}.
_CLAIM = """
local registry, mine, resuming, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ns, me, lease_ms = ARGV[1], ARGV[2], ARGV[3]
redis.call('SET', lease, me, 'PX', lease_ms)

-- Of two records of one conversation keep the one with the most attempts, then
-- the latest update (Python's ``newer``); a record that does not decode loses.
local function wins(candidate, current)
  local ok_a, a = pcall(cjson.decode, candidate)
  if not ok_a or type(a) ~= 'table' then return false end
  local ok_b, b = pcall(cjson.decode, current)
  if not ok_b or type(b) ~= 'table' then return true end
  local attempts_a, attempts_b = tonumber(a.attempts) or 0, tonumber(b.attempts) or 0
  if attempts_a ~= attempts_b then return attempts_a > attempts_b end
  return (tonumber(a.updated_at) or 0) > (tonumber(b.updated_at) or 0)
end

local skipped = {}
for _, owner in ipairs(redis.call('SMEMBERS', registry)) do
  if owner ~= me and redis.call('EXISTS', ns .. ':lease:' .. owner) == 0 then
    local theirs = ns .. ':m:' .. owner
    local kind = redis.call('TYPE', theirs)['ok']
    if kind == 'hash' then
      local entries = redis.call('HGETALL', theirs)
      for i = 1, #entries, 2 do
        local field, record = entries[i], entries[i + 1]
        local current = redis.call('HGET', mine, field)
        if not current or wins(record, current) then
          redis.call('HSET', mine, field, record)
        end
        redis.call('SADD', resuming, field)
      end
      redis.call('DEL', theirs)
    elseif kind ~= 'none' then
      table.insert(skipped, theirs)
    end
    -- A claimer that died mid-claim: its half-claimed keys came with its hash.
    redis.call('DEL', ns .. ':resuming:' .. owner)
    redis.call('SREM', registry, owner)
  end
end

local moved = {}
local fields = redis.call('SMEMBERS', resuming)
if #fields > 0 then
  redis.call('SADD', registry, me)
  for _, field in ipairs(fields) do
    local record = redis.call('HGET', mine, field)
    if record then
      table.insert(moved, field)
      table.insert(moved, record)
    end
  end
end
return {moved, skipped}
"""

# KEYS: registry, our hash, our lease. ARGV: owner.
_CLOSE = """
redis.call('DEL', KEYS[3])
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[1], ARGV[1])
end
return 0
"""


def _lease_from_env() -> float:
    return seconds_from_env(
        ENV_LEASE, DEFAULT_LEASE, _MIN_LEASE, f"the Redis lease is {DEFAULT_LEASE:g}s"
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _describe(client: redis.Redis) -> str:
    """Where the client points, without credentials."""
    kwargs = client.connection_pool.connection_kwargs
    db = kwargs.get("db", 0)
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={db}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


class RedisStore:
    """Markers in Redis under one namespace (see the module docstring for keys and guarantees).

    ``RedisStore(url_or_client, namespace="restart-guard", lease=None)``:
    ``url_or_client`` is a ``redis://``, ``rediss://`` or ``unix://`` URL or
    a sync ``redis.Redis`` client; ``namespace`` prefixes every key (one per
    bot); ``lease`` is how many seconds after its process dies without
    ``close()`` a process's markers become claimable (None:
    ``$RESTART_GUARD_LEASE``, else 30). A short lease resumes sooner after a crash but lets
    a process that stalls for longer than it lose its markers to another
    instance; keep it well above any pause you expect (GC, a busy host).
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        namespace: str = "restart-guard",
        lease: float | None = None,
    ) -> None:
        if lease is None:
            lease = _lease_from_env()
        if isinstance(lease, bool) or not isinstance(lease, (int, float)):
            raise TypeError(f"lease must be a number of seconds, got {lease!r}")
        if not (math.isfinite(lease) and lease >= _MIN_LEASE):
            raise ValueError(f"lease must be at least {_MIN_LEASE:g} seconds, got {lease!r}")
        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"namespace must be a non-empty string, got {namespace!r}")
        if isinstance(url_or_client, str):
            try:
                self._client = redis.Redis.from_url(
                    url_or_client,
                    socket_timeout=_TIMEOUT,
                    socket_connect_timeout=_CONNECT_TIMEOUT,
                    retry=_RETRY,
                )
            except ValueError as exc:
                raise ValueError(f"invalid Redis URL for restart-guard: {exc}") from None
            self._owns_client = True
        elif isinstance(url_or_client, redis.Redis):
            self._client = url_or_client
            self._owns_client = False
        else:
            raise TypeError(
                "RedisStore needs a redis:// URL or a sync redis.Redis client "
                f"(not an asyncio or cluster client), got {type(url_or_client).__name__}"
            )
        self.namespace = namespace
        self.lease = float(lease)
        self._lease_ms = max(1, round(self.lease * 1000))
        self._where = _describe(self._client)
        self._owner = ""
        self._claim_script = self._client.register_script(_CLAIM)
        self._close_script = self._client.register_script(_CLOSE)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._lease_held = False  # a lease of ours was set and should still exist
        self._renew_failing = False
        # What this process holds in Redis (field -> record) and whether it is draining:
        # written again if Redis loses it (restarted empty, a failover lost writes).
        self._held: dict[bytes, bytes] = {}
        self._draining = False
        # Commit, claim and the renewal thread's check change or compare _held.
        self._held_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, namespace={self.namespace!r})"

    # ------------------------------------------------------------------ keys
    @property
    def _registry(self) -> str:
        return f"{self.namespace}:owners"

    @property
    def _corrupt(self) -> str:
        return f"{self.namespace}:corrupt"

    def _markers_key(self, owner: str) -> str:
        return f"{self.namespace}:m:{owner}"

    def _lease_key(self, owner: str) -> str:
        return f"{self.namespace}:lease:{owner}"

    def _draining_key(self, owner: str) -> str:
        return f"{self.namespace}:draining:{owner}"

    def _resuming_key(self, owner: str) -> str:
        return f"{self.namespace}:resuming:{owner}"

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except redis.AuthenticationError as exc:  # a ConnectionError, but not "unreachable"
            raise StoreError(
                f"cannot {action}: Redis at {self._where} rejected the credentials ({exc}); "
                "check the user and password in the URL"
            ) from exc
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreError(
                f"cannot {action}: Redis at {self._where} is unreachable ({exc}); check that "
                "the server runs and the URL, network and TLS settings are right"
            ) from exc
        except redis.RedisError as exc:
            raise StoreError(
                f"cannot {action}: Redis at {self._where} refused ({exc}); check that it is "
                f"a writable primary and that the ACL user may use keys {self.namespace}:* "
                "with +@hash +@set +@string +@keyspace +@scripting +@transaction"
            ) from exc

    def _require_open(self) -> str:
        if not self._owner:
            raise StoreError(f"{self!r} is not open: call open(owner) first")
        return self._owner

    # ------------------------------------------------------------------ lease
    def open(self, owner: str) -> None:
        """Take the lease for ``owner`` and start renewing it every ``lease / 3`` s.

        Raises :class:`StoreError` if Redis is unreachable; the store stays
        usable and the lease is taken by the renewal thread or the first
        commit once Redis answers.
        """
        if not owner:
            raise ValueError("owner must be a non-empty string")
        self._owner = owner
        try:
            self._renew()
        except StoreError:
            # The caller reports this error; the renewal thread stays quiet until
            # Redis answers, so an outage at start-up is one line, not two.
            self._renew_failing = True
            raise
        finally:
            # Started even when Redis is down: it takes the lease once Redis answers.
            if self._renewer is None or not self._renewer.is_alive():
                self._stop = threading.Event()
                self._renewer = threading.Thread(
                    target=self._renew_loop,
                    args=(self._stop,),
                    name="restart-guard-redis-lease",
                    daemon=True,
                )
                self._renewer.start()

    def _renew(self) -> None:
        owner = self._require_open()
        with self._held_lock, self._errors("take the lease of this process"):
            pipe = self._client.pipeline(transaction=True)
            pipe.set(self._lease_key(owner), owner, px=self._lease_ms, get=True)
            pipe.hlen(self._markers_key(owner))
            previous, stored = pipe.execute()
            self._check_held(previous, stored)

    def _check_held(self, previous: object, stored: int) -> None:
        """After a lease renewal: write again what Redis lost of what we hold.

        ``previous`` is what the lease key held before it was set again,
        ``stored`` how many markers our hash holds now. Called with
        ``_held_lock`` held, so no commit changes ``_held`` meanwhile.
        """
        lost = len(self._held) - stored
        if lost <= 0:
            self._note_lease(previous)
            return
        owner = self._owner
        pipe = self._client.pipeline(transaction=True)
        pipe.sadd(self._registry, owner)
        pipe.hset(self._markers_key(owner), mapping=cast("dict[FieldT, EncodableT]", self._held))
        if self._draining:
            pipe.set(self._draining_key(owner), "1", px=_DRAINING_TTL_MS)
        pipe.execute()
        self._lease_held = True
        log.warning(
            "restart-guard: Redis at %s had lost %d of the %d marker(s) this process holds%s "
            "(restarted without persistence, a failover lost writes, or another instance "
            "claimed them after the lease ran out); written again",
            self._where,
            lost,
            len(self._held),
            " and its lease" if previous is None else "",
        )

    def _note_lease(self, previous: object) -> None:
        if previous is None and self._lease_held:
            log.error(
                "restart-guard: the Redis lease of %s had expired (Redis unreachable or the "
                "process stalled for more than %.1fs); another instance may have claimed and "
                "resumed its conversations. Lease taken again",
                self._owner,
                self.lease,
            )
        self._lease_held = True

    def _renew_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.lease / 3):
            try:
                self._renew()
            except StoreError as exc:
                if not self._renew_failing:
                    self._renew_failing = True
                    log.warning(
                        "restart-guard: cannot renew the Redis lease (%s); the markers of this "
                        "process become claimable by another instance after %.1fs",
                        exc,
                        self.lease,
                    )
                continue
            except Exception:  # a bug here must not kill the lease silently
                log.exception("restart-guard: renewing the Redis lease failed")
                continue
            if self._renew_failing:
                self._renew_failing = False
                log.warning(
                    "restart-guard: Redis at %s answers again; lease of this process renewed",
                    self._where,
                )

    # ------------------------------------------------------------------ writing
    def commit(
        self, puts: Sequence[Marker], removes: Sequence[str], *, draining: bool = False
    ) -> None:
        """Upsert ``puts`` and delete ``removes`` in one MULTI/EXEC round trip.

        ``draining`` sets ``{ns}:draining:{owner}`` in the same transaction:
        every marker of this owner reads as phase ``draining`` from then on.
        """
        if not puts and not removes and not draining:
            return
        owner = self._require_open()
        hash_key = self._markers_key(owner)
        records = _records(puts)
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._lease_key(owner), owner, px=self._lease_ms, get=True)
        if puts:
            pipe.sadd(self._registry, owner)
            pipe.hset(hash_key, mapping=records)
        if removes:
            pipe.hdel(hash_key, *removes)
        if draining:
            pipe.set(self._draining_key(owner), "1", px=_DRAINING_TTL_MS)
        pipe.hlen(hash_key)  # fewer than we hold: Redis lost some (see _check_held)
        with self._held_lock, self._errors(f"write {len(puts)} marker(s) / remove {len(removes)}"):
            replies = pipe.execute()
            self._held.update(cast("dict[bytes, bytes]", records))
            for key in removes:
                self._held.pop(key.encode(), None)
            self._draining = self._draining or draining
            self._check_held(replies[0], replies[-1])

    def close(self) -> None:
        """Stop renewing, delete the lease, close the connections this store opened.

        Markers still present stay; with the lease gone the next start
        claims them at once instead of waiting for the lease to run out.
        """
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            self._stop.set()
            renewer.join()
        try:
            if self._owner:
                owner = self._owner
                with self._errors("release the lease of this process"):
                    self._client.delete(self._draining_key(owner))
                    self._close_script(
                        keys=[self._registry, self._markers_key(owner), self._lease_key(owner)],
                        args=[owner],
                    )
                self._lease_held = False
        finally:
            if self._owns_client:
                self._client.close()

    # ------------------------------------------------------------------ reading
    def claim(self) -> list[Marker]:
        """Move the markers of every owner whose lease is gone to us (see module docstring)."""
        owner = self._require_open()
        mine = self._markers_key(owner)
        with self._errors("claim markers"):
            reply = self._claim_script(
                keys=[self._registry, mine, self._resuming_key(owner), self._lease_key(owner)],
                args=[self.namespace, owner, self._lease_ms],
            )
        self._lease_held = True
        moved, skipped = cast("list[list[bytes | str]]", reply)
        for key in skipped:
            log.warning(
                "restart-guard: %s is not a hash of markers; left alone. Delete it if nothing "
                "else uses it",
                _text(key),
            )
        now = time.time()
        claimed: list[Marker] = []
        bad: dict[str, bytes | str] = {}
        for i in range(0, len(moved), 2):
            field, record = _text(moved[i]), moved[i + 1]
            marker = _parse(field, record)
            if marker is None:
                bad[field] = record
            else:
                claimed.append(marker.claimed_by(owner, now))
        if bad:
            log.warning(
                "restart-guard: skipped %d unreadable marker record(s) in Redis (garbage or "
                "unknown version); %d valid marker(s) kept; the unreadable ones were set "
                "aside in %s",
                len(bad),
                len(claimed),
                self._corrupt,
            )
        if not moved:
            return []
        records = _records(claimed)
        pipe = self._client.pipeline(transaction=True)
        if claimed:
            pipe.hset(mine, mapping=records)
        if bad:
            pipe.hdel(mine, *bad)
            pipe.hset(self._corrupt, mapping={field: record for field, record in bad.items()})
        pipe.delete(self._resuming_key(owner))
        with self._held_lock, self._errors(f"record {len(claimed)} claimed marker(s)"):
            pipe.execute()
            self._held.update(cast("dict[bytes, bytes]", records))
        return claimed

    def discard(self, markers: Sequence[Marker]) -> int:
        """Delete each marker from the hash of the process that holds it; how many were there."""
        if not markers:
            return 0
        with self._errors(f"discard {len(markers)} marker(s)"):
            pipe = self._client.pipeline(transaction=False)
            for marker in markers:
                pipe.hdel(self._markers_key(marker.owner), marker.key)
            return sum(int(n) for n in pipe.execute())

    def load(self) -> list[StoredMarker]:
        """Every marker in the namespace, without claiming anything."""
        with self._errors("read markers"):
            owners = sorted(_text(o) for o in self._client.smembers(self._registry))
            if self._owner and self._owner not in owners:
                owners.append(self._owner)
            pipe = self._client.pipeline(transaction=False)
            for owner in owners:
                pipe.hgetall(self._markers_key(owner))
                pipe.exists(self._lease_key(owner))
                pipe.exists(self._draining_key(owner))
            replies: list[Any] = pipe.execute(raise_on_error=False)
        found: list[StoredMarker] = []
        bad = 0
        for index, owner in enumerate(owners):
            records, alive, draining = replies[3 * index : 3 * index + 3]
            if isinstance(records, Exception):
                log.warning(
                    "restart-guard: %s is not a hash of markers: %s",
                    self._markers_key(owner),
                    records,
                )
                continue
            held = bool(alive) if not isinstance(alive, Exception) else False
            if owner == self._owner and self._renewer is not None:
                held = True
            for field, record in cast("dict[bytes | str, bytes | str]", records).items():
                marker = _parse(_text(field), record)
                if marker is None:
                    bad += 1
                    continue
                if draining in (True, 1) and marker.phase is Phase.IN_FLIGHT:
                    marker = marker.with_changes(phase=Phase.DRAINING)
                found.append(StoredMarker(marker, held))
        if bad:
            log.warning(
                "restart-guard: skipped %d unreadable marker record(s) in Redis namespace %s "
                "(garbage or unknown version); %d valid marker(s) kept",
                bad,
                self.namespace,
                len(found),
            )
        return found


def find_namespaces(client: redis.Redis, prefix: str = "") -> list[str]:
    """The namespaces starting with ``prefix`` that hold markers now, sorted (for operators).

    A namespace counts while its ``{ns}:owners`` set exists, that is while
    some process's markers are in it. Raises ``redis.RedisError`` when Redis
    cannot be read.
    """
    suffix = ":owners"
    keys = client.scan_iter(match=f"{prefix}*{suffix}", count=1000)
    return sorted({_text(key)[: -len(suffix)] for key in keys})


def _records(markers: Sequence[Marker]) -> Mapping[FieldT, EncodableT]:
    # Bytes, not str: redis-py packs bytes arguments without re-encoding them,
    # which is ~10% of a 10,000-marker commit.
    return {m.key.encode(): _encode(m) for m in markers}


def _encode(marker: Marker) -> bytes:
    return marker_json_text(marker).encode()


def _parse(field: str, record: bytes | str) -> Marker | None:
    try:
        marker = Marker.from_json(json.loads(record))
    except UNREADABLE:
        return None
    return marker if marker.key == field else None
