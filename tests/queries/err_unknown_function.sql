-- An unknown function is named.
SELECT host, mode_of(value) FROM cpu_usage_percent GROUP BY host
