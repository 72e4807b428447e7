"""An in-graph check that serialized `tf.Example`s are readable, so that a
malformed one fails with a clean `InvalidArgument`.

Why: when `tf.io.parse_example` cannot read the structure of a row, its
error message holds the row's raw bytes ("Could not parse example input,
value: '<bytes>'"). Python then fails to decode that message as UTF-8 and
raises `UnicodeDecodeError` instead of TF's error (`saved_model_cli run`,
`tf.compat.v1.Session`, eager calls on TF 2.21), and the bytes end up in
TF Serving's replies. No TF op reports a parse failure as a value rather
than an error (`tf.io.decode_proto` fails too, with `DataLoss`), so:

1. `canonical_rows` checks, with vectorized ops over the bytes, that each
   row has the wire form every protobuf library writes: either empty, or
   one `features` field (tag 0x0a) spanning the row, which holds map
   entries (tag 0x0a) of exactly two length-delimited fields (key and
   value, tags 0x0a / 0x12) that end where the entry ends. TF's parser
   reads every such row (the feature values themselves are read later,
   with errors that name the feature and no bytes). It is sound, not
   complete: valid rows of another form (two Examples concatenated,
   unknown fields, lengths over 2**28) are not vouched for.
2. Only the rows it does not vouch for go to `unreadable_rows`, which asks
   TF's own parser about each one inside a `tf.data` pipeline with
   `ignore_errors`: exact, but a few milliseconds a call, so it runs on
   the rare path only (a `tf.cond`).

Cost, measured through TF's session loader on the shared 2-core CPU (the
tiny shared_bottom model of 9 features, ~200-byte rows): the `examples`
signature took 0.29 / 0.59 / 1.29 ms for 1 / 64 / 256 rows with the check
against 0.15 / 0.28 / 0.49 ms without. The check reads every byte a few
times with element-wise ops (TF's gathers cost more than that), so its cost
grows with the request's bytes; `serving_default` does not pay it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

_KEY_TAG = 0x0A  # field 1, length-delimited: Example.features, map keys
_VALUE_TAG = 0x12  # field 2, length-delimited: map values
_PADDING = b"\0" * 8  # so that a varint read past the last byte is in range
_PROBE_KEY = "__kmtl_probe__"  # a feature no Example holds


def canonical_rows(serialized: tf.Tensor) -> tf.Tensor:
    """Which rows are `tf.Example`s in canonical wire form.

    Args:
        serialized: string tensor `[batch]`.

    Returns:
        bool tensor `[batch]`: `True` where the row is empty or one
        `features` field of well-formed map entries (TF's parser then reads
        its structure); `False` where this check cannot tell.
    """
    import tensorflow as tf

    lengths = tf.strings.length(serialized)
    ends = tf.cumsum(lengths)
    starts = ends - lengths
    total = tf.reduce_sum(lengths)
    size = total + 1  # the positions 0..total; total is past every row
    joined = tf.strings.reduce_join(serialized) + _PADDING
    data = tf.cast(tf.io.decode_raw(joined, tf.uint8), tf.int32)

    # At every position p, a field: a one-byte tag at p, then a varint
    # length of at most 4 bytes, then the payload [pay, end). This reads
    # every byte with a few element-wise ops, which costs less in TF than
    # gathering the bytes at the few positions that matter. A field that
    # runs past its row is caught below: the chain of entries must end
    # exactly at the row's end.
    tag, b0, b1, b2, b3 = (data[k : k + size] for k in range(5))
    more0 = tf.cast(b0 >= 128, tf.int32)
    more1 = more0 * tf.cast(b1 >= 128, tf.int32)
    more2 = more1 * tf.cast(b2 >= 128, tf.int32)
    # Each byte gives its low 7 bits (the byte less 128 when its
    # continuation bit is set), shifted by 7 bits per earlier byte.
    length = (
        (b0 - 128 * more0)
        + more0 * (b1 - 128 * more1) * 128
        + more1 * (b2 - 128 * more2) * 16384
        + more2 * b3 * 2097152
    )
    pay = tf.range(size) + 2 + more0 + more1 + more2
    too_long = tf.logical_and(more2 > 0, b3 >= 128)
    # An end past the last row is as wrong as total + 1: clip it there, so
    # that 2 * end + 1 below stays an int32.
    end = tf.where(too_long, -1, tf.minimum(pay + length, total + 1))
    is_key = tf.equal(tag, _KEY_TAG)
    key_or_value = tf.logical_or(is_key, tf.equal(tag, _VALUE_TAG))
    # One int32 holds a field's end and whether its tag is 0x0a or 0x12.
    packed = end * 2 + tf.cast(key_or_value, tf.int32)

    def at(values: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
        return tf.gather(values, tf.clip_by_value(index, 0, total))

    # Map entries can start only where a 0x0a byte is: check those. An
    # entry is two key-or-value fields that end where the entry ends.
    entries = tf.cast(tf.where(is_key[:total])[:, 0], tf.int32)
    first = tf.gather(pay, entries)  # the entry's first field
    stop = tf.gather(end, entries)  # the entry's end
    first_packed = at(packed, first)
    second = tf.bitwise.right_shift(first_packed, 1)  # its second field
    second_packed = at(packed, second)
    entry_ok = (
        (first < stop)
        & (second > first)
        & (second < stop)
        & tf.equal(first_packed % 2, 1)
        & tf.equal(second_packed, stop * 2 + 1)
    )
    count = tf.size(entries)
    fail = total + 1  # past every row's end
    jump = tf.concat([tf.where(entry_ok, stop, fail), [fail]], 0)
    lookup = tf.concat([entries, [-1]], 0)

    # The row: one `features` field spanning it, then its entries, one
    # after the other, must end exactly at the row's end. Each step moves
    # every row on by one entry (as many steps as the most entries a row
    # has: its number of features).
    top_ok = at(is_key, starts) & tf.equal(at(end, starts), ends)
    position = tf.where(
        tf.equal(lengths, 0), ends, tf.where(top_ok, at(pay, starts), fail)
    )

    def step(position: tf.Tensor) -> tuple[tf.Tensor]:
        index = tf.searchsorted(entries, position)
        found = tf.equal(tf.gather(lookup, index), position)
        moved = tf.gather(jump, tf.where(found, index, count))
        return (tf.where(position < ends, moved, position),)

    (position,) = tf.while_loop(
        lambda position: tf.reduce_any(position < ends), step, (position,)
    )
    return tf.equal(position, ends)


def unreadable_rows(serialized: tf.Tensor, suspect: tf.Tensor) -> tf.Tensor:
    """Which of the suspect rows TF's parser cannot read at all.

    Each suspect row is parsed alone (for a feature it does not hold, so
    only its structure is read) in a `tf.data` pipeline that drops the rows
    that fail: exact, and slow (milliseconds), so run it only on the rows
    `canonical_rows` does not vouch for.

    Args:
        serialized: string tensor `[batch]`.
        suspect: bool tensor `[batch]`. The rows to ask about.

    Returns:
        int64 tensor `[n]`: the indices of the unreadable rows.
    """
    import tensorflow as tf

    rows = tf.where(suspect)[:, 0]
    probe = {_PROBE_KEY: tf.io.RaggedFeature(tf.string)}

    def parse(row: tf.Tensor, example: tf.Tensor) -> tuple[tf.Tensor, ...]:
        parsed = tf.io.parse_example(example[None], probe)[_PROBE_KEY]
        return row, parsed.row_lengths()

    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    options.autotune.enabled = False
    readable = (
        tf.data.Dataset.from_tensor_slices((rows, tf.gather(serialized, rows)))
        .map(parse)
        .ignore_errors()
        .with_options(options)
        .reduce(
            tf.zeros_like(suspect),
            lambda seen, item: tf.tensor_scatter_nd_update(
                seen, item[0][None, None], [True]
            ),
        )
    )
    return tf.where(tf.logical_and(suspect, tf.logical_not(readable)))[:, 0]


def assert_readable(serialized: tf.Tensor, signature_name: str) -> tf.Tensor:
    """Fails with a clean `InvalidArgument` on rows TF cannot parse.

    Args:
        serialized: string tensor `[batch]` of serialized `tf.Example`s.
        signature_name: str. Named in the message.

    Returns:
        `serialized`, to be parsed only after the check has passed.
    """
    import tensorflow as tf

    canonical = canonical_rows(serialized)

    def ask_the_parser() -> tf.Tensor:
        bad = unreadable_rows(serialized, tf.logical_not(canonical))
        failed = tf.raw_ops.Assert(
            condition=tf.equal(tf.size(bad), 0),
            data=[
                f"Signature {signature_name}: rows of the input "
                f"{signature_name} that are not serialized tf.Example "
                "protos (tf.io.parse_example cannot read them):",
                bad,
            ],
            summarize=20,
        )
        with tf.control_dependencies([failed]):
            return tf.constant(True)

    checked = tf.cond(
        tf.reduce_all(canonical), lambda: tf.constant(True), ask_the_parser
    )
    with tf.control_dependencies([checked]):
        return tf.identity(serialized)
