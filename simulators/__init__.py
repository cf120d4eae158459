"""Built-in simulator plugins of sbi-astro (found by the core only through entry points)."""
