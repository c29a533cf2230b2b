"""A pet's weighings as an SVG line chart drawn on the server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from records.models import WeightRecord, WeightUnit

CHART_WIDTH, CHART_HEIGHT = 640, 220
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 48, 16, 16, 32
_LB_PER_KG = Decimal("2.20462")


@dataclass
class ChartPoint:
    x: float
    y: float
    label: str


@dataclass
class WeightChart:
    """An SVG line chart drawn on the server: coordinates only, no script, no style."""

    width: int
    height: int
    unit: str
    points: list[ChartPoint]
    polyline: str
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str, str]]  # x, label, text-anchor
    left: int = _PAD_LEFT
    right: int = CHART_WIDTH - _PAD_RIGHT
    top: int = _PAD_TOP
    bottom: int = CHART_HEIGHT - _PAD_BOTTOM


def _in_unit(weight: Decimal, unit: str, wanted: str) -> Decimal:
    if unit == wanted:
        return weight
    if wanted == WeightUnit.LB:
        return weight * _LB_PER_KG
    return weight / _LB_PER_KG


def weight_chart(weights: Sequence[WeightRecord], unit: str) -> WeightChart | None:
    """Weighings (oldest first) as chart coordinates, in the pet's current unit."""
    if not weights:
        return None
    values = []
    for w in weights:
        try:
            values.append((w.recorded_at, float(_in_unit(Decimal(w.weight), w.unit, unit))))
        except (InvalidOperation, TypeError):
            continue
    if not values:
        return None
    low = min(v for _, v in values)
    high = max(v for _, v in values)
    span = high - low
    low, high = (low - 1, high + 1) if span == 0 else (low - span * 0.1, high + span * 0.1)
    low = max(low, 0.0)
    start = values[0][0]
    end = values[-1][0]
    seconds = (end - start).total_seconds() or 1.0
    left, right = _PAD_LEFT, CHART_WIDTH - _PAD_RIGHT
    top, bottom = _PAD_TOP, CHART_HEIGHT - _PAD_BOTTOM

    def x_of(when: dt.datetime) -> float:
        if len(values) == 1:
            return (left + right) / 2
        return round(left + (right - left) * (when - start).total_seconds() / seconds, 1)

    def y_of(value: float) -> float:
        return round(bottom - (bottom - top) * (value - low) / (high - low), 1)

    points = [
        ChartPoint(x_of(when), y_of(value), f"{value:.1f} {unit} on {when:%-d %b %Y}")
        for when, value in values
    ]
    y_ticks = [
        (y_of(low + (high - low) * i / 4), f"{low + (high - low) * i / 4:.1f}") for i in range(5)
    ]
    if len(values) > 1:
        x_ticks = [(points[0].x, f"{start:%-d %b %Y}", "start")]
        x_ticks.append((points[-1].x, f"{end:%-d %b %Y}", "end"))
    else:
        x_ticks = [(points[0].x, f"{start:%-d %b %Y}", "middle")]
    return WeightChart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        unit=unit,
        points=points,
        polyline=" ".join(f"{p.x},{p.y}" for p in points),
        y_ticks=y_ticks,
        x_ticks=x_ticks,
    )
