insert into monitoring.breaches (run_id, metric, subject, metric_value, threshold, detected_at)
values (:run_id, :metric, :subject, :metric_value, :threshold, :detected_at)
