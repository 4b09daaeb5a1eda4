"""A Redis lock store whose tickets are issued, served and returned atomically (Lua scripts).

Rasa runs each turn of a conversation under ``async with lock_store.lock(sender_id)``. Its
``RedisLockStore`` keeps the conversation's ``TicketLock`` as one JSON string and changes it by
read, modify, write from every process: two processes that issue a ticket at once read the same
lock, both take the same number and both are "now serving"; a ``cleanup`` that finds nobody
waiting deletes the key even if a ticket was issued in between, and the next issuer starts a new
queue beside a running turn. A waiter whose ticket expired while the stored lock is empty
(``now_serving`` is then 0) waits until another turn deletes the key, for ever if none comes; this
happens even to one waiter behind a holder that died, when both tickets expire between two of its
polls. Waiters poll once a second. With several Rasa processes (Sanic workers or replicas) turns
of one conversation overlap: two turns read the same tracker and the later save wins.

Here every change of a conversation's queue is one Lua script run by Redis, so nothing can come in
between:

- ``<prefix>atomic_lock:<conversation id>`` is a hash: field ``last`` is the last ticket number
  issued, every other field is a live ticket (its number) with its expiry time (ms, Redis server
  time, so the processes' clocks do not matter). The key expires with its last ticket, so a
  conversation whose holders all died leaves nothing behind.
- ``issue`` drops the expired tickets and appends one numbered ``max(last + 1, server time in µs)``:
  numbers only grow, also after the key was deleted, so a holder that outlived its ticket can never
  mistake a later ticket for its own, nor return it. It returns the number and the ticket's
  deadline (its issue on the server's clock plus its lifetime).
- ``status`` drops the expired tickets and tells a ticket how many live tickets are ahead of it
  (0: it holds the lock; -1: it expired or was returned). A holder that died stops blocking the
  queue when its ticket expires.
- ``release`` removes one ticket, and the key with it when no ticket is left.
- ``renew`` moves a live ticket's expiry on to ``min(now + lease, deadline)`` (leases, below).

Rasa's semantics are kept: tickets are served in the order they were issued; a ticket's lifetime
(``TICKET_LOCK_LIFETIME``, 60 s) counts from its issue and covers waiting and holding; a ticket
that expires while waiting raises Rasa's ``LockError``; the ticket is returned when the turn ends,
also by an exception or a cancellation. Waiters poll every ``TANDEM_LOCK_POLL_SECONDS`` (default
0.02 s) instead of every second. The client is redis-py's synchronous one, as Rasa's: each call is
one short script, bounded by ``socket_timeout`` (connecting too).

Leases. A ticket that lives its whole lifetime also outlives a process killed in the middle of a
turn (SIGKILL, out of memory, a lost node) by up to 60 s, and the conversation's next turns on the
surviving processes wait for it, longer than the gateway waits (30 s). So ``lock()`` issues its
ticket with a lease (``lease_seconds``, else ``TANDEM_LOCK_LEASE_SECONDS``, else 10 s; at most the
lifetime), and while the block waits and while it holds, a background task renews it every
lease / 3 to ``min(server now + lease, deadline)``, the deadline being the issue time on Redis's
clock (``issue`` returns it) plus the lifetime. ``renew`` is one script: it renews only a live
ticket (a late renewal cannot bring back a returned or lapsed one), never past its deadline, and
keeps the key's expiry at the latest of the live tickets'. A live process keeps Rasa's semantics
exactly (a waiter still gets ``LockError`` when its lifetime runs out; a holder's ticket ends at its
lifetime at the latest); a dead process's ticket lapses within one lease, so the next turn waits at
most a lease and a poll. The trade-off: a process whose event loop stalls (a blocking call, a long
CPU-bound step) misses its renewals, and once no renewal has landed for a lease (renewals come
every lease / 3: a stall of two thirds of a lease can do it) its ticket lapses as if the process
had died. A holder's turn then goes on unprotected: the conversation's next turn may be served and
run beside it (the later tracker save wins, as when a Rasa ticket outlives its lifetime), the
renewal logs a warning once when it finds the ticket gone, and the late return removes nothing of
anybody's (numbers only grow). A waiter that stalls gets ``LockError``. Hence a default of 10 s:
far above the loop's normal stalls, well below the gateway's 30 s. A renewal runs its script in a
worker thread (``asyncio.to_thread``; redis-py's pool is thread-safe): when Redis is slow or gone,
each call can take up to ``socket_timeout``, and renewals, unlike polls, come for every turn of the
process, holders included, every lease / 3; inline they would hold the event loop, every
conversation of the process, for that long. ``issue_ticket`` (Rasa's interface, for a caller that
does not renew) still issues a ticket for its whole lifetime.

``endpoints.yml`` (the settings of Rasa's ``redis`` lock store, plus ``poll_seconds`` and
``lease_seconds``; values from ``${VAR}`` arrive as strings and are converted, ``use_ssl: "false"``
is false)::

    lock_store:
      type: tandem_rasa.lock_store.AtomicRedisLockStore
      url: ${LOCK_STORE_HOST}        # a host name, or a redis:// / rediss:// URL
      port: ${LOCK_STORE_PORT}
      db: ${LOCK_STORE_DB}
      password: ${LOCK_STORE_PASSWORD}
      use_ssl: false
      key_prefix: tandem             # alphanumeric, as in Rasa
      socket_timeout: 5
      poll_seconds: 0.02             # else TANDEM_LOCK_POLL_SECONDS, else 0.02
      lease_seconds: 10              # else TANDEM_LOCK_LEASE_SECONDS, else 10; > 0, <= lifetime

The keys differ from Rasa's (``lock:<id>``): the two stores do not exclude each other, so switch
all Rasa processes at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis
from rasa.core.lock import Ticket, TicketLock
from rasa.core.lock_store import (
    DEFAULT_SOCKET_TIMEOUT_IN_SECONDS,
    LOCK_LIFETIME,
    LockError,
    LockStore,
)

logger = logging.getLogger(__name__)

POLL_SECONDS_ENV = "TANDEM_LOCK_POLL_SECONDS"
DEFAULT_POLL_SECONDS = 0.02
LEASE_SECONDS_ENV = "TANDEM_LOCK_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 10.0
KEY_PART = "atomic_lock:"
SETTINGS = frozenset(
    {
        "port",
        "db",
        "username",
        "password",
        "use_ssl",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_ca_certs",
        "key_prefix",
        "socket_timeout",
        "poll_seconds",
        "lease_seconds",
    }
)

# Shared by the scripts: the server's time in ms, and the live tickets (expired ones deleted),
# as a list of {number as a string, expiry} sorted by number. Numbers stay strings: Lua 5.1's
# tostring() would print a 16-digit number as 1.7e+15.
_PRELUDE = """
local key = KEYS[1]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function live_tickets()
  local fields = redis.call('HGETALL', key)
  local tickets = {}
  for i = 1, #fields, 2 do
    if fields[i] ~= 'last' then
      local expires = tonumber(fields[i + 1])
      if expires <= now then
        redis.call('HDEL', key, fields[i])
      else
        tickets[#tickets + 1] = {fields[i], expires}
      end
    end
  end
  table.sort(tickets, function(a, b) return tonumber(a[1]) < tonumber(b[1]) end)
  return tickets
end
"""

# ARGV[1]: lease in ms (at most the lifetime), ARGV[2]: lifetime in ms. Returns {the new ticket's
# number (a string), its deadline: now + lifetime (ms)}; it expires after the lease unless renewed.
ISSUE = (
    _PRELUDE
    + """
local tickets = live_tickets()
local floor = clock[1] .. string.format('%06d', tonumber(clock[2]))
local last = redis.call('HGET', key, 'last')
if last and tonumber(last) >= tonumber(floor) then
  redis.call('HINCRBY', key, 'last', 1)
else
  redis.call('HSET', key, 'last', floor)
end
local number = redis.call('HGET', key, 'last')
local expires = now + tonumber(ARGV[1])
redis.call('HSET', key, number, expires)
local until_ms = expires
for _, ticket in ipairs(tickets) do
  if ticket[2] > until_ms then until_ms = ticket[2] end
end
redis.call('PEXPIREAT', key, until_ms)
return {number, now + tonumber(ARGV[2])}
"""
)

# ARGV[1]: a ticket number or ''. Returns {live tickets ahead of it (0: it holds the lock, -1: it
# is not live), number, expiry, number, expiry, ...} of the live tickets in order.
STATUS = (
    _PRELUDE
    + """
local tickets = live_tickets()
local position = -1
local reply = {position}
for i, ticket in ipairs(tickets) do
  if ticket[1] == ARGV[1] then position = i - 1 end
  reply[#reply + 1] = ticket[1]
  reply[#reply + 1] = ticket[2]
end
reply[1] = position
if #tickets == 0 then redis.call('DEL', key) end
return reply
"""
)

# ARGV[1]: a ticket number. Returns 1 if it was live (removed), else 0.
RELEASE = (
    _PRELUDE
    + """
local removed = redis.call('HDEL', key, ARGV[1])
if #live_tickets() == 0 then redis.call('DEL', key) end
return removed
"""
)

# ARGV[1]: a ticket number, ARGV[2]: lease in ms, ARGV[3]: its deadline (ms). Moves a live
# ticket's expiry on to min(now + lease, deadline), never back; returns the expiry (ms), 0 if the
# ticket is not live (expired or returned: it stays so).
RENEW = (
    _PRELUDE
    + """
local tickets = live_tickets()
local expires = 0
local until_ms = 0
for _, ticket in ipairs(tickets) do
  if ticket[1] == ARGV[1] then
    local renewed = math.min(now + tonumber(ARGV[2]), tonumber(ARGV[3]))
    if renewed > ticket[2] then
      redis.call('HSET', key, ticket[1], renewed)
      ticket[2] = renewed
    end
    expires = ticket[2]
  end
  if ticket[2] > until_ms then until_ms = ticket[2] end
end
if #tickets == 0 then
  redis.call('DEL', key)
elseif expires > 0 then
  redis.call('PEXPIREAT', key, until_ms)
end
return expires
"""
)

# ARGV: number, expiry (ms), number, expiry, ... Replaces the live tickets (Rasa's save_lock).
SAVE = (
    _PRELUDE
    + """
local last = redis.call('HGET', key, 'last')
redis.call('DEL', key)
local until_ms = now
for i = 1, #ARGV, 2 do
  local expires = tonumber(ARGV[i + 1])
  if expires > now then
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
    if not last or tonumber(ARGV[i]) > tonumber(last) then last = ARGV[i] end
    if expires > until_ms then until_ms = expires end
  end
end
if until_ms > now then
  redis.call('HSET', key, 'last', last)
  redis.call('PEXPIREAT', key, until_ms)
end
return 1
"""
)


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return True
    if text in {"false", "0", "no", "off", ""}:
        return False
    raise ValueError(f"lock_store.{name} must be true or false, not {value!r}")


def _text(value: Any) -> str | None:
    """An optional setting: ``${VAR}`` of an empty variable is ``""``, i.e. not set."""
    return str(value) if value not in (None, "") else None


def _seconds(name: str, value: Any) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise ValueError(f"lock_store.{name} must be a positive number of seconds, not {value!r}")
    return seconds


class AtomicRedisLockStore(LockStore):
    """Rasa's ``LockStore`` on Redis with atomic tickets (see the module docstring)."""

    def __init__(
        self,
        endpoint_config: Any = None,
        *,
        host: str = "localhost",
        port: int | str = 6379,
        db: int | str = 1,
        username: str | None = None,
        password: str | None = None,
        use_ssl: bool | str = False,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_ca_certs: str | None = None,
        key_prefix: str | None = None,
        socket_timeout: float | str = DEFAULT_SOCKET_TIMEOUT_IN_SECONDS,
        poll_seconds: float | str | None = None,
        lease_seconds: float | str | None = None,
    ) -> None:
        """Connect lazily (no I/O here) to Redis.

        Rasa's loader passes the ``endpoints.yml`` entry as ``endpoint_config`` (an
        ``EndpointConfig``: ``url`` is the host or a ``redis://`` URL, the other keys are its
        ``kwargs``); code can pass the settings as keywords instead. Unknown keys raise
        ``ValueError``, so a misspelt setting is not silently ignored.
        """
        settings: dict[str, Any] = {
            "port": port,
            "db": db,
            "username": username,
            "password": password,
            "use_ssl": use_ssl,
            "ssl_certfile": ssl_certfile,
            "ssl_keyfile": ssl_keyfile,
            "ssl_ca_certs": ssl_ca_certs,
            "key_prefix": key_prefix,
            "socket_timeout": socket_timeout,
            "poll_seconds": poll_seconds,
            "lease_seconds": lease_seconds,
        }
        url = host
        if endpoint_config is not None:
            unknown = sorted(set(endpoint_config.kwargs) - SETTINGS)
            if unknown:
                raise ValueError(f"unknown lock_store settings {unknown}; known: {sorted(SETTINGS)}")
            settings.update(endpoint_config.kwargs)
            url = endpoint_config.url or host
        timeout = _seconds("socket_timeout", settings["socket_timeout"])
        poll = settings["poll_seconds"]
        if _text(poll) is None:
            poll = os.environ.get(POLL_SECONDS_ENV) or DEFAULT_POLL_SECONDS
        self.poll_seconds = _seconds("poll_seconds", poll)
        lease = settings["lease_seconds"]
        if _text(lease) is None:
            lease = os.environ.get(LEASE_SECONDS_ENV) or DEFAULT_LEASE_SECONDS
        self.lease_seconds = _seconds("lease_seconds", lease)
        connection: dict[str, Any] = {
            "username": _text(settings["username"]),
            "password": _text(settings["password"]),
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
        if str(url).startswith(("redis://", "rediss://", "unix://")):
            self.red = redis.Redis.from_url(
                str(url), **{k: v for k, v in connection.items() if v is not None}
            )  # the URL's own user, password and db unless set here
        else:
            use_ssl = _flag("use_ssl", settings["use_ssl"])
            self.red = redis.Redis(
                host=str(url),
                port=int(settings["port"]),
                db=int(settings["db"]),
                ssl=use_ssl,
                ssl_certfile=_text(settings["ssl_certfile"]),
                ssl_keyfile=_text(settings["ssl_keyfile"]),
                ssl_ca_certs=_text(settings["ssl_ca_certs"]),
                **connection,
            )
        prefix = _text(settings["key_prefix"])
        self.key_prefix = KEY_PART
        if prefix is not None:
            if prefix.isalnum():
                self.key_prefix = f"{prefix}:{KEY_PART}"
            else:  # as Rasa's RedisLockStore does
                logger.warning(f"Omitting non-alphanumeric redis key prefix {prefix!r}; using {KEY_PART!r}.")
        # register_script sends nothing yet: EVALSHA, and the script once on NOSCRIPT.
        self._issue = self.red.register_script(ISSUE)
        self._status = self.red.register_script(STATUS)
        self._release = self.red.register_script(RELEASE)
        self._renew = self.red.register_script(RENEW)
        self._save = self.red.register_script(SAVE)
        super().__init__()

    def _key(self, conversation_id: str) -> str:
        return self.key_prefix + conversation_id

    def _state(self, conversation_id: str, ticket: int | None = None) -> tuple[int, TicketLock]:
        """How many live tickets are ahead of ``ticket`` (-1: not live), and the live tickets."""
        reply = self._status(keys=[self._key(conversation_id)], args=["" if ticket is None else str(ticket)])
        tickets = deque(
            Ticket(int(number), int(expires) / 1000) for number, expires in zip(reply[1::2], reply[2::2], strict=True)
        )
        return int(reply[0]), TicketLock(conversation_id, tickets)

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        """Append a ticket living ``lock_lifetime`` seconds to the conversation's queue.

        Nobody renews it: it lives its whole lifetime (``lock()`` issues leased tickets).
        """
        return self._issue_ticket(conversation_id, lock_lifetime, float(lock_lifetime))[0]

    def _issue_ticket(self, conversation_id: str, lock_lifetime: float, lease: float) -> tuple[int, int]:
        """A new ticket expiring after ``lease`` (at most its lifetime), and its deadline (ms)."""
        lifetime_ms = max(1, round(float(lock_lifetime) * 1000))
        lease_ms = min(lifetime_ms, max(1, round(lease * 1000)))
        try:
            number, deadline_ms = self._issue(keys=[self._key(conversation_id)], args=[lease_ms, lifetime_ms])
        except redis.RedisError as error:
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error
        return int(number), int(deadline_ms)

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float | None = None,
    ) -> AsyncIterator[TicketLock]:
        """Hold the conversation's lock for the block; the ticket is returned however it ends.

        ``wait_time_in_seconds`` is, as in Rasa, the time between two polls (default: this
        store's ``poll_seconds``); the wait ends with ``LockError`` when the ticket expires. The
        ticket is leased (``lease_seconds``, at most ``lock_lifetime``) and renewed by a task of
        its own while the block waits and holds, up to ``lock_lifetime`` from its issue.
        """
        lease = min(self.lease_seconds, float(lock_lifetime))
        ticket, deadline_ms = self._issue_ticket(conversation_id, lock_lifetime, lease)
        renewal = asyncio.create_task(
            self._keep_alive(conversation_id, ticket, lease, deadline_ms, float(lock_lifetime)),
            name=f"lock renewal {conversation_id} {ticket}",
        )
        try:
            yield await self._acquire_lock(conversation_id, ticket, wait_time_in_seconds or self.poll_seconds)
        finally:
            renewal.cancel()  # first: no renewal starts after the return (one in flight finds it gone)
            self._return_ticket(conversation_id, ticket)
            # asyncio.wait neither raises the task's CancelledError nor cancels the task when this
            # block is cancelled again; the task ends at its next step.
            await asyncio.wait([renewal])

    async def _keep_alive(
        self, conversation_id: str, ticket: int, lease: float, deadline_ms: int, lifetime: float
    ) -> None:
        """Renew the ticket every lease / 3 until its deadline; never raises (logs instead)."""
        loop = asyncio.get_running_loop()
        # The deadline is on Redis's clock; issued before this local time, so it comes no later.
        ends_at = loop.time() + lifetime
        lease_ms = max(1, round(lease * 1000))
        args: list[str | int] = [str(ticket), lease_ms, deadline_ms]
        keys = [self._key(conversation_id)]
        while loop.time() < ends_at:
            await asyncio.sleep(lease / 3)
            try:
                expires = int(await asyncio.to_thread(self._renew, keys=keys, args=args))
            except redis.RedisError as error:  # the ticket lapses if this lasts a lease
                logger.warning(f"Could not renew ticket {ticket} of conversation '{conversation_id}': {error}")
                continue
            except Exception:  # a bug here must not end the turn
                logger.exception(f"Renewing ticket {ticket} of conversation '{conversation_id}' failed")
                return
            if expires == 0:
                logger.warning(
                    f"Ticket {ticket} of conversation '{conversation_id}' lapsed before its lock() block "
                    f"ended (not renewed within its {lease} s lease, or removed by someone else): a holder "
                    "goes on without the lock, a waiter gets LockError."
                )
                return
            if expires >= deadline_ms:
                return  # it ends at its lifetime, as in Rasa

    async def _acquire_lock(self, conversation_id: str, ticket: int, wait_time_in_seconds: float) -> TicketLock:
        while True:
            try:
                ahead, lock = self._state(conversation_id, ticket)
            except redis.RedisError as error:
                raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}': {error}") from error
            if ahead == 0:
                logger.debug(f"Acquired lock for conversation '{conversation_id}'.")
                return lock
            if ahead < 0:  # expired while waiting (Rasa's wait limit) or returned by someone
                raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
            await asyncio.sleep(wait_time_in_seconds)

    def _return_ticket(self, conversation_id: str, ticket: int) -> None:
        # Never raise from the lock's ``finally`` (it would replace the turn's own exception): a
        # ticket that cannot be returned stops counting when it expires.
        try:
            self.cleanup(conversation_id, ticket)
        except redis.RedisError as error:
            logger.warning(f"Could not return ticket {ticket} of conversation '{conversation_id}': {error}")

    def get_lock(self, conversation_id: str) -> TicketLock | None:
        """The conversation's live tickets, or ``None`` when there are none."""
        _, lock = self._state(conversation_id)
        return lock if lock.tickets else None

    def is_someone_waiting(self, conversation_id: str) -> bool:
        """Whether the conversation has a live ticket (a holder or a waiter)."""
        return self.get_lock(conversation_id) is not None

    def update_lock(self, conversation_id: str) -> None:
        """Drop the expired tickets (every script does it anyway)."""
        self._state(conversation_id)

    def save_lock(self, lock: TicketLock) -> None:
        """Replace the conversation's tickets with ``lock``'s (atomic; numbers never go back)."""
        args: list[int] = []
        for ticket in lock.tickets:
            args += [int(ticket.number), round(ticket.expires * 1000)]
        self._save(keys=[self._key(lock.conversation_id)], args=args)

    def delete_lock(self, conversation_id: str) -> None:
        """Drop the conversation's queue, tickets and all."""
        self._log_deletion(conversation_id, bool(self.red.delete(self._key(conversation_id))))

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        """Return one ticket; the key goes with the last one."""
        self._release(keys=[self._key(conversation_id)], args=[str(ticket_number)])

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Return the ticket, in one script: Rasa's check-then-delete would drop a new waiter's."""
        self.finish_serving(conversation_id, ticket_number)


__all__ = ["LEASE_SECONDS_ENV", "POLL_SECONDS_ENV", "AtomicRedisLockStore"]
