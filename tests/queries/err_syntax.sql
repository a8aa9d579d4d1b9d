-- A syntax error names the line and column.
SELECT ts value FROM cpu_usage_percent WHERE
