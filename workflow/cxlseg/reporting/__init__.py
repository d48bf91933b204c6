"""What a researcher reads after a run: the QC report and the HTML pages of the run report."""
