-- An unknown metric is named, with the metrics the file has.
SELECT * FROM cpu
