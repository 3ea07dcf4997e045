"""The paper's research questions on one split: variants, the runner and the report
(`ihas experiment`)."""
