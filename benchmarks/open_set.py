"""The table of unknown scores (docs/results.md) from the reports of ``pdfewshot evaluate --open-set``.

    pdfewshot evaluate --open-set --shot 1 --shot 5 --episodes 300 --method prototype --method finetune \\
        --report models/open_set.json
    python benchmarks/open_set.py models/open_set.json [more reports...]
"""

import json
import sys
from pathlib import Path


def cell(measure: dict[str, float] | None) -> str:
    return "-" if measure is None else f"{measure['mean']:.3f} +- {measure['interval95']:.3f}"


def main() -> None:
    print("| report | method | way | shot | score | closed acc. | AUROC | false accepts @95% | open acc. |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for report in sys.argv[1:]:
        for row in json.loads(Path(report).read_text())["open_set"]:
            measures = (row["closed_accuracy"], row["auroc"], row["false_accepts_at_95"], row["open_accuracy"])
            print(
                f"| {Path(report).stem} | {row['method']} | {row['way']}+{row['unknown_way']} | {row['shot']} | "
                f"{row['score']} | " + " | ".join(cell(m) for m in measures) + " |"
            )


if __name__ == "__main__":
    main()
