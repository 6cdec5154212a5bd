"""Cold-start data: rollouts, rejection sampling, SFT export, pass@k selection."""
