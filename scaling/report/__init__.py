"""What a reader sees: the report page (markdown and HTML), its tables, and its figures
(matplotlib, imported only when a figure is drawn)."""

from scaling.report.page import write_report

__all__ = ["write_report"]
