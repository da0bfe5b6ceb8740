"""What iproute2's tc does in user space: reading `tc` words into the typed
requests the link layer takes (admin.proto's TcQdiscRequest), and printing its
answers as tc does. No layer room imports this; the CLI and the topology loader do."""
