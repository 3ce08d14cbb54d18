"""`markdown_table`: the UI's small tables hold exactly the frame's values, cell by cell."""

import re
import subprocess
import sys

import numpy as np
import pandas as pd

from microns_assets.metadata import markdown_table


def _parse(markdown: str) -> tuple[list[str], list[str], list[list[str]]]:
    r"""Header, alignment row and body cells of a markdown table (`\|` is a literal bar)."""

    def cells(line: str) -> list[str]:
        assert line.startswith("| ") and line.endswith(" |"), line
        parts = re.split(r"(?<!\\) \| ", line[2:-2])
        return [p.replace("\\|", "|").replace("\\\\", "\\").strip() for p in parts]

    header, align, *body = markdown.splitlines()  # (as markdown breaks lines: \r too)
    return cells(header), cells(align), [cells(line) for line in body]


def test_every_value_is_in_its_cell_and_numbers_are_right_aligned() -> None:
    frame = pd.DataFrame(
        {
            "pt_root_id": np.array([864691135000000001, 2**62 + 7], dtype=np.int64),
            "depth_um": [12.25, np.nan],
            "nullable": pd.array([None, 5], dtype="Int64"),
            "cell_type": ["L2 | L3", None],
        }
    )
    header, align, body = _parse(markdown_table(frame).value)
    assert header == list(frame.columns)
    assert align == ["---:", "---:", "---:", "---"]
    assert len(body) == len(frame)
    for row, cells in zip(frame.itertuples(index=False), body, strict=True):
        assert int(cells[0]) == row.pt_root_id  # 64-bit ids exactly, not through a float
        assert (cells[1] == "") if np.isnan(row.depth_um) else float(cells[1]) == row.depth_um
        assert (cells[2] == "") if row.nullable is pd.NA else int(cells[2]) == row.nullable
        assert cells[3] == ("" if row.cell_type is None else row.cell_type)


def test_with_the_index_its_name_and_values_come_first() -> None:
    layers = pd.Series(["L1", "L2/3", "L2/3"], name="layer")
    kinds = pd.Series(["excitatory", "inhibitory", "excitatory"], name="class")
    table = pd.crosstab(layers, kinds, margins=True)
    header, align, body = _parse(markdown_table(table, index=True).value)
    assert header == ["layer", *map(str, table.columns)]
    assert align[0] == "---" and set(align[1:]) == {"---:"}
    assert [cells[0] for cells in body] == list(table.index)
    counts = np.array([[int(c) for c in cells[1:]] for cells in body])
    np.testing.assert_array_equal(counts, table.to_numpy())


def test_an_empty_frame_is_a_header_only() -> None:
    header, _, body = _parse(
        markdown_table(pd.DataFrame({"id": pd.Series([], dtype="int64")})).value
    )
    assert header == ["id"] and body == []


def test_a_table_does_not_import_tabulate() -> None:
    code = (
        "import sys, pandas as pd\n"
        "from microns_assets.metadata import markdown_table\n"
        "markdown_table(pd.DataFrame({'a': [1.5], 'b': ['x']}), index=True)\n"
        "print('tabulate' in sys.modules, 'wcwidth' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_repeated_column_name_keeps_each_columns_own_values() -> None:
    frame = pd.DataFrame([[1, 2.5, True], [3, 4.5, False]], columns=["n", "n", "ok"])
    header, align, body = _parse(markdown_table(frame).value)
    assert header == ["n", "n", "ok"] and align == ["---:", "---:", "---"]
    assert body == [["1", "2.5", "True"], ["3", "4.5", "False"]]


def test_32_bit_floats_show_the_number_written_not_its_64_bit_widening() -> None:
    written = [263.78, 0.1, 7.3, 0.33333334]  # as CAVE's Float32 columns (volume, score) hold
    frame = pd.DataFrame(
        {
            "volume": np.array(written, dtype=np.float32),
            "score": pd.array([*written[:3], None], dtype="Float32"),
        }
    )
    _, _, body = _parse(markdown_table(frame).value)
    assert [cells[0] for cells in body] == ["263.78", "0.1", "7.3", "0.33333334"]
    assert [cells[1] for cells in body] == ["263.78", "0.1", "7.3", ""]
    for cells, value in zip(body, frame["volume"], strict=True):
        assert np.float32(float(cells[0])) == value  # exact for the 32-bit value


def test_line_breaks_in_text_stay_inside_their_row() -> None:
    frame = pd.DataFrame({"note": ["one\r\ntwo", "three\rfour", "five\nsix"], "n": [1, 2, 3]})
    _, _, body = _parse(markdown_table(frame).value)
    assert body == [["one two", "1"], ["three four", "2"], ["five six", "3"]]
