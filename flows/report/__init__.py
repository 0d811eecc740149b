"""The report: answers to the reporting questions and their renderings."""
