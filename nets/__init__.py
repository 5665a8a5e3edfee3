"""PyTorch residual networks as discretizations of dX = f dt + eps g dW, their data and trainer."""
