"""Training the DSDrive model (joint loss, distilled chain of thought) and open-loop evaluation."""
