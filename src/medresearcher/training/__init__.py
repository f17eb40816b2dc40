"""Training on existing engines (paper §4): rewards, SFT and GRPO with TRL, configs for verl
and LLaMA-Factory.

Nothing is imported here, so that ``import medresearcher.training.rewards`` (what a verl
``custom_reward_function`` loads) stays light; torch and TRL are imported by the modules that
train.
"""
