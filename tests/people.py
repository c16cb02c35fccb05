"""The tests' own people directory: a second, dict-backed implementation of bot.auth.Directory (the
state package's SQL table is the one ragbot runs with). Passwords are real argon2 hashes, links are
used once, OpenID people are keyed by issuer and subject; sign-in is tested against it, not faked."""

from __future__ import annotations

import secrets
import threading
from dataclasses import replace

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.auth import Person


class PeopleBook:
    def __init__(self) -> None:
        # Low-cost parameters: the tests hash a few passwords, not guard them.
        self.hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
        self.unknown = self.hasher.hash(secrets.token_hex(8))  # an unknown name costs a hash check too
        self.people: dict[int, Person] = {}
        self.passwords: dict[str, tuple[int, str]] = {}  # username -> (person id, hash)
        self.links: dict[str, int] = {}
        self.subjects: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()

    def _new(self, name: str, email: str | None, groups: frozenset[str], admin: bool) -> Person:
        person = Person(len(self.people) + 1, name, email, groups, admin)
        self.people[person.id] = person
        return person

    def add(
        self,
        username: str,
        password: str,
        *,
        name: str,
        groups: frozenset[str] = frozenset(),
        admin: bool = False,
    ) -> Person:
        with self.lock:
            person = self._new(name, None, groups, admin)
            self.passwords[username.lower()] = (person.id, self.hasher.hash(password))
            return person

    def check_password(self, username: str, password: str) -> Person | None:
        entry = self.passwords.get(username.lower())
        try:
            self.hasher.verify(entry[1] if entry else self.unknown, password)
        except (VerificationError, InvalidHashError):
            return None
        return self.people.get(entry[0]) if entry else None

    def from_oidc(
        self, issuer: str, subject: str, *, email: str | None, name: str, groups: frozenset[str]
    ) -> Person:
        with self.lock:
            known = self.subjects.get((issuer, subject))
            if known is None:
                person = self._new(name, email, groups, False)
                self.subjects[(issuer, subject)] = person.id
                return person
            person = replace(self.people[known], name=name, email=email, groups=groups)
            self.people[known] = person
            return person

    def sign_in_link(self, person_id: int) -> str:
        token = secrets.token_urlsafe(32)
        self.links[token] = person_id
        return token

    def redeem_link(self, token: str) -> Person | None:
        with self.lock:
            person_id = self.links.pop(token, None)
        return self.people.get(person_id) if person_id is not None else None

    def get(self, person_id: int) -> Person | None:
        return self.people.get(person_id)

    def remove(self, person_id: int) -> None:
        self.people.pop(person_id, None)
