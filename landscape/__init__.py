"""1-D loss landscapes J_0 and J_eps of the main paper's section 4.1 (lands with the landscape issue)."""
