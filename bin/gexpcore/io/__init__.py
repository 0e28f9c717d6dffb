"""Reading gexp's inputs: the samplesheet, peak files, chromosome sizes, and their id rules.

Steps read their inputs through these modules; nothing here imports a step. A step's own
outputs are read by that step's module (`read_bins` in steps/bins.py), beside their writer.
"""
