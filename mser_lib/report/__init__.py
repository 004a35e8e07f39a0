"""Tables (CSV, Markdown, LaTeX) and figures built from run records, never typed in."""
