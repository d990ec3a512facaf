"""Writes the Parquet dataset fixtures (tests/fixtures/datasets/*.parquet) the way pyarrow / HF datasets do.

Usage: python dataset_make_parquet.py OUT_DIR     (needs pyarrow: pip install pyarrow)

- openai.parquet: a "messages" column of list<struct<role, content>> (snappy, two row groups), as
  `datasets.Dataset.to_parquet` writes a chat dataset;
- alpaca.parquet: string columns instruction / input / output (uncompressed), plus an int64 id.
The files are committed; the script documents how they were made.
"""

import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    messages = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    chats = pa.table(
        {
            "messages": pa.array(
                [
                    [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! How can I help?"}],
                    [
                        {"role": "system", "content": "Reply in French."},
                        {"role": "user", "content": "Thank you"},
                        {"role": "assistant", "content": "Merci"},
                    ],
                    [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
                ],
                type=messages,
            )
        }
    )
    pq.write_table(chats, os.path.join(out, "openai.parquet"), compression="snappy", row_group_size=2)
    alpaca = pa.table(
        {
            "id": pa.array([1, 2], type=pa.int64()),
            "instruction": ["Add the numbers.", "Name a colour."],
            "input": ["1 and 2", ""],
            "output": ["3", "Green"],
        }
    )
    pq.write_table(alpaca, os.path.join(out, "alpaca.parquet"), compression="none")


if __name__ == "__main__":
    main()
