"""Studies: one command each, writing a results directory (summary.json, a metrics table, a figure).

plasticity-supervised  loss of plasticity on a continual supervised stream (oakrl.study.supervised)
plasticity-rl          streaming RL under changing dynamics, per remedy (oakrl.study.rl)
"""
