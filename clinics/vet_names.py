"""Whether a vet and the practice-system user they are mapped to are evidently two people.

The names are compared as people write them: case, accents, punctuation, spacing, titles
("Dr", "Dr.") and post-nominals ("DVM") do not count; a middle name or an initial for the
first name is the same person ("W. Heath" is William Heath). What is left over is for a person
to check, never a reason to refuse: a vet may be known by another name in the practice system.
"""

from __future__ import annotations

import re
import unicodedata

TITLES = frozenset({"dr", "doctor", "prof", "professor", "mr", "mrs", "ms", "miss", "mx"})
POST_NOMINALS = frozenset(
    {"dvm", "vmd", "bvsc", "bvms", "bvetmed", "mrcvs", "dacvim", "phd", "jr", "sr"}
)
_JOINED = re.compile("['\u2019.`]")  # "O'Brien" is "OBrien", "Dr." is "Dr"
_SEPARATOR = re.compile(r"[\W_]+")


def _words(text: str) -> list[str]:
    plain = "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    ).casefold()
    return [word for word in _SEPARATOR.split(_JOINED.sub("", plain)) if word]


def _person(first_name: str, last_name: str) -> tuple[list[str], list[str]]:
    given, family = _words(first_name), _words(last_name)
    while given and given[0] in TITLES:
        given = given[1:]
    while family and family[-1] in POST_NOMINALS:
        family = family[:-1]
    return given, family


def names_differ(*, first_name: str, last_name: str, other_first: str, other_last: str) -> bool:
    """True when the two names cannot be one person's; False when either has no name."""
    given, family = _person(first_name, last_name)
    other_given, other_family = _person(other_first, other_last)
    if not (given or family) or not (other_given or other_family):
        return False
    if given + family == other_given + other_family:
        return False
    same_initial = bool(given and other_given) and given[0][0] == other_given[0][0]
    return not (family and family == other_family and same_initial)
