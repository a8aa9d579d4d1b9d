-- Every aggregate, grouped by a label.
SELECT host, count(*), sum(value), avg(value), min(value), max(value),
       first(value), last(value), stddev(value), percentile(value, 0.9),
       median(value), twap(value)
FROM cpu_usage_percent GROUP BY host ORDER BY host
