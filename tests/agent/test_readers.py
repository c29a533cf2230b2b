"""The readers and the mapping file, without VetSync: what a practice's rows become, and the
mistakes a technical contact makes in a mapping, named where they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.conftest import EXAMPLES
from vetsync.agent.config import ConfigError
from vetsync.agent.demo import avimark_write, cornerstone_create
from vetsync.agent.mapping import load_mapping
from vetsync.agent.readers import CsvReader, SqlReader, read_entries
from vetsync.pims.agent import parse_client_entry


def test_avimark_exports_and_a_cornerstone_database_of_one_practice_read_the_same(
    tmp_path: Path,
) -> None:
    avimark = load_mapping(EXAMPLES / "avimark.toml")
    cornerstone = load_mapping(EXAMPLES / "cornerstone.toml")
    folder = avimark_write(tmp_path / "exports", clients=25)
    db = cornerstone_create(tmp_path / "practice.sqlite3", clients=25)

    from_csv = read_entries(CsvReader(folder, avimark), avimark).entries
    from_sql = read_entries(SqlReader(f"sqlite:///{db}", cornerstone), cornerstone).entries

    assert from_csv.keys() == from_sql.keys() and len(from_csv) == 25
    for pims_id, entry in from_csv.items():
        other = from_sql[pims_id]
        assert (entry["first_name"], entry["last_name"], entry["address"]) == (
            other["first_name"],
            other["last_name"],
            other["address"],
        )
        assert [
            (p["pims_id"], p["name"], p["species"], p["breed"], p["sex"], p["birth_date"])
            for p in entry["patients"]
        ] == [
            (p["pims_id"], p["name"], p["species"], p["breed"], p["sex"], p["birth_date"])
            for p in other["patients"]
        ]
        # And VetSync's own batch parser takes every one of them as it is.
        client, quarantined = parse_client_entry(entry)
        assert client is not None and quarantined == []
    assert from_csv["C-1"]["modified_at"] == "2026-11-01T08:00:00Z"


def test_a_value_the_practice_garbled_is_sent_as_is_for_vetsync_to_quarantine(
    tmp_path: Path,
) -> None:
    mapping = load_mapping(EXAMPLES / "avimark.toml")
    folder = avimark_write(tmp_path / "exports", clients=3)
    animals = (folder / "ANIMAL.csv").read_text(encoding="utf-8").splitlines()
    first = animals[1].split(",")
    first[6] = "heavy"  # the weight column
    (folder / "ANIMAL.csv").write_text(
        "\n".join([animals[0], ",".join(first), *animals[2:]]) + "\n", encoding="utf-8"
    )

    entry = read_entries(CsvReader(folder, mapping), mapping).entries[first[1]]
    _, quarantined = parse_client_entry(entry)

    assert [q.reason for q in quarantined] == ["weight must be a number (got 'heavy')."]


BROKEN = [
    ('first_name = "first_name"', 'nickname = "first_name"', "'nickname' is not a VetSync field"),
    ('species = "species.description"', 'species = "k.description"', "reads table 'k', which is"),
    ('owner = "client_id"', 'owner = ""', "[patients] needs owner"),
    ('table = "client"\n', "", "[clients]: table is required"),
    ('key = "vetsync_ref"', 'key = "history_id"', "key column 'history_id' must be one of"),
    ("[formats]", "[formats", "is not valid TOML"),
]


@pytest.mark.parametrize(("old", "new", "message"), BROKEN)
def test_a_broken_mapping_is_named_where_it_is_broken(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = (EXAMPLES / "cornerstone.toml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "mapping.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_mapping(path)

    assert message in str(caught.value)


def test_a_missing_export_file_and_column_are_reported_by_name(tmp_path: Path) -> None:
    mapping = load_mapping(EXAMPLES / "avimark.toml")
    folder = avimark_write(tmp_path / "exports", clients=2)
    (folder / "BREED.csv").unlink()
    text = (folder / "CLIENT.csv").read_text(encoding="utf-8").replace("Email", "E-mail", 1)
    (folder / "CLIENT.csv").write_text(text, encoding="utf-8")

    problems = CsvReader(folder, mapping).problems()

    assert any("file 'BREED' does not exist" in p for p in problems)
    assert any("column 'Email' does not exist in file 'CLIENT'" in p for p in problems)


def test_the_sql_reader_never_writes_to_the_practice_database(tmp_path: Path) -> None:
    mapping = load_mapping(EXAMPLES / "cornerstone.toml")
    db = cornerstone_create(tmp_path / "practice.sqlite3", clients=2)
    reader = SqlReader(f"sqlite:///{db}", mapping)

    with reader.engine.connect() as connection, pytest.raises(Exception, match="readonly"):
        connection.exec_driver_sql("DELETE FROM client")
