"""Robust statistics on stacked samples, fast enough for every frame of a clip: medians and
MADs over masked samples, running medians by selection networks, moving averages, and linear gap
filling over the frame index. The outlier gates (:mod:`retarget.clean.outliers`) and the pipeline
use them; numpy's ``nanmedian`` gives the same numbers, many times slower."""

from functools import lru_cache

import numpy as np

MAD_TO_SIGMA = 1.4826
# Elements per block of the running median: its working set stays in the CPU cache.
_BLOCK_ELEMENTS = 8192
# Medians over at most this many samples (the joints of a frame) may use a selection network.
_NETWORK_MAX_SAMPLES = 32


def fill_linear(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill missing samples of ``values`` (T, J, ...) per joint by linear interpolation over the
    frame index, holding the ends; joints with no valid sample become 0 (``np.interp``'s
    arithmetic, for all joints and channels at once)."""
    out = np.array(values, float, copy=True)
    num = len(out)
    gap = ~np.asarray(valid, bool)
    if num == 0 or not gap.any():
        return out
    before, after = valid_neighbours(~gap)
    frame, joint = np.nonzero(gap)
    lo, hi = before[frame, joint], after[frame, joint]
    flat = out.reshape(num, out.shape[1], -1)  # (T, J, C)
    y_lo = flat[np.maximum(lo, 0), joint]  # (N, C)
    y_hi = flat[np.minimum(hi, num - 1), joint]
    inside = ((lo >= 0) & (hi < num))[:, None]
    with np.errstate(invalid="ignore"):
        slope = (y_hi - y_lo) / (hi - lo)[:, None]
        line = slope * (frame - lo)[:, None] + y_lo
    held = np.where((lo >= 0)[:, None], y_lo, y_hi)
    filled = np.where(inside, line, held)
    filled[(lo < 0) & (hi >= num)] = 0.0
    flat[frame, joint] = filled
    return out


def valid_neighbours(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame of the last valid sample at or before each frame (-1 if none) and of the first at
    or after it (T if none), per column of ``valid`` (T, J): both (T, J) int32."""
    num = len(valid)
    index = np.arange(num, dtype=np.int32)[:, None]
    before = np.maximum.accumulate(np.where(valid, index, np.int32(-1)), axis=0)
    after = np.minimum.accumulate(np.where(valid, index, np.int32(num))[::-1], axis=0)[::-1]
    return before, after


def _batcher_sort(lo: int, hi: int) -> list[tuple[int, int]]:
    """Comparators (i, j), i < j, of Batcher's odd-even merge sort of lines ``lo..hi`` (inclusive,
    a power of two of them)."""
    if hi <= lo:
        return []
    mid = (lo + hi) // 2
    return _batcher_sort(lo, mid) + _batcher_sort(mid + 1, hi) + _batcher_merge(lo, hi, 1)


def _batcher_merge(lo: int, hi: int, step: int) -> list[tuple[int, int]]:
    """Comparators merging the sorted halves of lines ``lo..hi`` taken every ``step`` lines."""
    if 2 * step > hi - lo:
        return [(lo, lo + step)]
    return (
        _batcher_merge(lo, hi, 2 * step)
        + _batcher_merge(lo + step, hi, 2 * step)
        + [(i, i + step) for i in range(lo + step, hi - step, 2 * step)]
    )


@lru_cache(maxsize=32)
def selection_network(
    lines: int, ranks: tuple[int, ...]
) -> tuple[tuple[int, int, bool, bool], ...]:
    """Compare-exchange steps ``(i, j, keep_min, keep_max)`` that leave the ``r``-th smallest of
    ``lines`` values on line ``r`` for every ``r`` in ``ranks``: Batcher's sorting network
    (padding lines would hold +inf, so their comparators drop out), less every step the results
    do not depend on; ``keep_min`` / ``keep_max`` say which of the two outputs is still needed."""
    size = 1 << max(lines - 1, 0).bit_length()
    pairs = [(i, j) for i, j in _batcher_sort(0, size - 1) if j < lines]
    needed, steps = set(ranks), []
    for i, j in reversed(pairs):
        if i in needed or j in needed:
            steps.append((i, j, i in needed, j in needed))
            needed |= {i, j}
    return tuple(reversed(steps))


def _select(lines: list[np.ndarray], network) -> list[np.ndarray]:
    """Run a :func:`selection_network` over arrays of equal shape (elementwise min/max)."""
    lines = list(lines)
    for i, j, keep_min, keep_max in network:
        low = np.minimum(lines[i], lines[j]) if keep_min else None
        if keep_max:
            lines[j] = np.maximum(lines[i], lines[j])
        if keep_min:
            lines[i] = low
    return lines


def running_median(values: np.ndarray, window: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Median over a centred window along axis 0 (edges padded by repetition); finite input,
    odd ``window``: exactly the middle of each sorted window, by elementwise min/max. With
    ``rows`` (T,) bool, only those frames' medians (N, ...) (in frame order).

    Two neighbouring windows share all but one sample each: a selection network finds the two
    middle values of the shared ``window - 1`` samples, and each window's median is its own
    extra sample clamped between them. Blocks of rows keep the working set in the CPU cache."""
    half = int(window) // 2
    num = len(values)
    flat = np.asarray(values, float).reshape(num, -1)
    if rows is None:
        rows = np.ones(num, bool)
    shape = (int(np.count_nonzero(rows)),) + np.shape(values)[1:]
    if half == 0 or num == 0:
        return flat[rows].reshape(shape)
    padded = np.concatenate([np.repeat(flat[:1], half, 0), flat, np.repeat(flat[-1:], half, 0)])
    edges = np.flatnonzero(np.diff(np.concatenate([[0], rows.astype(np.int8), [0]])))
    # Frame t's window is padded[t : t + window]: a run of frames [a, b) needs padded[a, b + 2h).
    runs = [
        _window_medians(padded[a : b + 2 * half], half)
        for a, b in zip(edges[::2], edges[1::2], strict=True)
    ]
    return np.concatenate(runs).reshape(shape) if runs else np.zeros(shape)


def _window_medians(padded: np.ndarray, half: int) -> np.ndarray:
    """Medians (N, C) of the windows ``padded[t : t + 2 half + 1]`` of ``padded`` (N + 2 half, C)."""
    num = len(padded) - 2 * half
    if num % 2:  # output frames come in pairs: a spare one at the end
        padded = np.concatenate([padded, padded[-1:]])
    pairs = (num + 1) // 2
    network = selection_network(2 * half, (half - 1, half))
    parity = padded[0::2].copy(), padded[1::2].copy()  # padded[k + 2p] = parity[k % 2][k // 2 + p]
    out = np.empty((2, pairs, padded.shape[1]))  # even and odd output frames
    rows = max(1, _BLOCK_ELEMENTS // max(padded.shape[1], 1))
    for start in range(0, pairs, rows):
        stop = min(start + rows, pairs)

        def line(k: int, start: int = start, stop: int = stop) -> np.ndarray:
            """padded[2p + k] for the pairs p of this block."""
            return parity[k % 2][start + k // 2 : stop + k // 2]

        shared = _select([line(1 + k) for k in range(2 * half)], network)
        low, high = shared[half - 1], shared[half]
        out[0, start:stop] = np.maximum(low, np.minimum(line(0), high))
        out[1, start:stop] = np.maximum(low, np.minimum(line(2 * half + 1), high))
    return out.transpose(1, 0, 2).reshape(2 * pairs, -1)[:num]


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0 (window shrinks at the edges), from a running sum."""
    half = window // 2
    num = len(values)
    total = np.empty((num + 1,) + values.shape[1:])
    total[0] = 0.0
    np.cumsum(values, axis=0, out=total[1:])
    index = np.arange(num)
    count = np.minimum(index + half + 1, num) - np.maximum(index - half, 0)
    out = np.empty(values.shape)
    whole = max(num - half, 0)  # rows whose window end is inside the signal
    out[:whole] = total[half + 1 : half + 1 + whole]
    out[whole:] = total[num]
    clipped = min(half, num)  # rows whose window starts at frame 0 (where the sum is 0)
    out[clipped:] -= total[: num - clipped]
    out /= count.reshape((-1,) + (1,) * (values.ndim - 1))
    return out


def _sorted_samples(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The samples of ``values`` (N, ...) where ``mask`` (finite there), each column sorted, as
    rows (C, N) with +inf after them, and their count per column (C,). Rows sort over
    contiguous memory and without NaN, numpy's fast path."""
    num = len(values)
    data = np.empty((int(np.prod(values.shape[1:], dtype=int)), num))
    data[...] = np.reshape(values, (num, -1)).T
    hidden = ~np.broadcast_to(mask, values.shape).reshape(num, -1).T
    data[hidden] = np.inf
    data.sort(axis=1)
    return data, num - hidden.sum(axis=1)


def _middle(data: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median (C,) of each row of sorted ``data`` (C, N) from its ``count`` first samples."""
    row = np.arange(len(data))
    low = data[row, np.maximum((count - 1) // 2, 0)]
    high = data[row, np.maximum(count // 2, 0)]
    return np.where(count > 0, 0.5 * (low + high), np.nan)


def _middle_deviation(data: np.ndarray, count: np.ndarray, median: np.ndarray) -> np.ndarray:
    """Median (C,) of ``|x - median|`` over each row of sorted ``data`` (C, N), without a second
    sort: the deviations below the median, read downwards, and those above it, read upwards,
    are two sorted runs, and a binary search finds the middle ranks of their union."""
    rows, num = data.shape
    flat = data.ravel()
    start = np.arange(rows) * num
    below = (data < median[:, None]).sum(axis=1)  # run A: median - x, x < median; B: x - median

    def run_a(i):  # A[i] = median - data[below - 1 - i]
        return median - flat[start + np.clip(below - 1 - i, 0, num - 1)]

    def run_b(j):  # B[j] = data[below + j] - median
        return flat[start + np.clip(below + j, 0, num - 1)] - median

    # Both middle ranks at once (2, C): i samples of A among the rank + 1 smallest, the first i
    # with A[i] >= B[rank - i].
    rank = np.stack([(count - 1) // 2, count // 2])
    lo = np.maximum(rank + 1 - (count - below), 0)
    hi = np.minimum(rank + 1, below)
    for _ in range(num.bit_length() + 1):
        open_ = lo < hi
        if not open_.any():
            break
        i = (lo + hi) // 2
        more = open_ & (run_a(i) < run_b(rank - i))
        lo, hi = np.where(more, i + 1, lo), np.where(open_ & ~more, i, hi)
    left = np.where(lo > 0, run_a(lo - 1), -np.inf)
    right = np.where(rank - lo >= 0, run_b(rank - lo), -np.inf)
    middle = np.maximum(left, right)
    return np.where(count > 0, 0.5 * (middle[0] + middle[1]), np.nan)


def masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median along axis 0 over the samples where ``mask`` (NaN where none).

    Over a short axis (joints of a frame), columns with every sample get their median from a
    selection network (no sort); the others, and long axes, from one sort (NaN last) instead of
    ``np.nanmedian``'s slow per-column path."""
    values = np.asarray(values, float)
    shape = np.broadcast_shapes(values.shape, np.shape(mask))
    values, mask = np.broadcast_to(values, shape), np.broadcast_to(mask, shape)
    num = shape[0]
    if 0 < num <= _NETWORK_MAX_SAMPLES:
        full = mask[0].copy()
        for line in mask[1:]:  # not mask.all(axis=0): numpy reduces a short axis slowly
            full &= line
        if full.any():
            ranks = ((num - 1) // 2, num // 2)
            lines = _select(list(np.ascontiguousarray(values)), selection_network(num, ranks))
            out = 0.5 * (lines[ranks[0]] + lines[ranks[1]])
            if not full.all():
                out[~full] = _middle(*_sorted_samples(values[:, ~full], mask[:, ~full]))
            return out
    return _middle(*_sorted_samples(values, mask)).reshape(shape[1:])


def median_and_sigma(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and 1.4826 x MAD of ``values`` (T, ...) along axis 0 over the samples where
    ``mask``, from one sort."""
    shape = np.broadcast_shapes(np.shape(values), np.shape(mask))
    data, count = _sorted_samples(np.broadcast_to(values, shape), np.broadcast_to(mask, shape))
    median = _middle(data, count)
    if len(data) < 16:  # few columns: sorting the deviations costs less than the search
        deviation = np.abs(data - median[:, None])  # the +inf fill stays last
        deviation.sort(axis=1)
        sigma = MAD_TO_SIGMA * _middle(deviation, count)
    else:
        sigma = MAD_TO_SIGMA * _middle_deviation(data, count, median)
    return median.reshape(shape[1:]), sigma.reshape(shape[1:])


def robust_sigma(residuals: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """1.4826 x MAD of ``residuals`` (T, ...) along axis 0 over the samples where ``mask``."""
    return median_and_sigma(residuals, mask)[1]
