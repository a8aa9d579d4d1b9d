-- An unknown column is named, with its position.
SELECT hots, value FROM cpu_usage_percent
