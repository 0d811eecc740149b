insert into monitoring.metrics (run_id, batch_id, metric, subject, metric_value, measured_at)
values (:run_id, :batch_id, :metric, :subject, :metric_value, :measured_at)
