"""Safe-Sora, the method under study, and its ablation variants."""
