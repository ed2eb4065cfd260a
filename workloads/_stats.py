"""Small statistics for the event-loop experiments: percentiles and fixed-width histograms."""

from __future__ import annotations

import math


def percentiles(sorted_values, points):
    """Nearest-rank percentiles of an already sorted list ({} of zeros when empty)."""
    result = {}
    n = len(sorted_values)
    for p in points:
        if n == 0:
            result[p] = 0.0
            continue
        rank = max(1, int(math.ceil(p / 100.0 * n)))
        result[p] = sorted_values[min(rank, n) - 1]
    return result


def summary_ms(values):
    """p50 / p99 / max / mean of a list of milliseconds, rounded for a record."""
    ordered = sorted(values)
    p = percentiles(ordered, (50, 99))
    return {
        "p50": round(p[50], 3),
        "p99": round(p[99], 3),
        "max": round(ordered[-1], 3) if ordered else 0.0,
        "mean": round(sum(ordered) / len(ordered), 3) if ordered else 0.0,
        "n": len(ordered),
    }


class Histogram:
    """Counts per bucket of `width` (values below 0 go to bucket 0: a tick is never early
    by more than the clock's resolution, and early is as good as on time here)."""

    def __init__(self, width):
        self.width = width
        self.counts = {}
        self.n = 0
        self.max = 0.0

    @classmethod
    def of(cls, values, width):
        hist = cls(width)
        for value in values:
            hist.add(value)
        return hist

    def add(self, value):
        bucket = max(0, int(value // self.width))
        self.counts[bucket] = self.counts.get(bucket, 0) + 1
        self.n += 1
        if value > self.max:
            self.max = value

    def percentiles(self, points):
        """Upper edge of the bucket holding each percentile (cheap: no sorting of values)."""
        result = {}
        buckets = sorted(self.counts.items())
        for p in points:
            if not self.n:
                result[p] = 0.0
                continue
            rank = max(1, int(math.ceil(p / 100.0 * self.n)))
            seen = 0
            for bucket, count in buckets:
                seen += count
                if seen >= rank:
                    result[p] = round((bucket + 1) * self.width, 3)
                    break
        return result

    def pairs(self):
        """[[bucket start, count], ...] for non-empty buckets, in order."""
        return [[round(b * self.width, 3), c] for b, c in sorted(self.counts.items())]
