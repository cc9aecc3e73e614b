"""Reports of a reconciliation, rendered from a ReconciliationResult alone.

``write.write_reports`` writes them all; each writer has one module: ``html`` (the finance
report), ``files`` (findings as Parquet, CSV and XLSX), ``summary`` (summary.json),
``junit`` (the gate for CI) and ``terminal`` (the console summary and gate failure lines).
"""
