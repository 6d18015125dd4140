"""Write the golden cases that crosscheck_2_consumer.py reads (the docs build runs both, in this order)."""
from bilevel_ref.crosscheck import export_golden

cases = export_golden("_output/golden", ["quadratic-3x6", "cubic-hard-5"])
for case in cases:
    print(f"{case.name}: {case.kind}, outputs {', '.join(sorted(case.outputs))}")
