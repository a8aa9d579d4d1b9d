-- BETWEEN on time; count per region; ORDER BY position.
SELECT region, count(*) AS n FROM http_requests_total
WHERE ts BETWEEN '2024-01-01T01:00:00Z' AND '2024-01-01T01:30:00Z'
GROUP BY region ORDER BY 2 DESC, 1
