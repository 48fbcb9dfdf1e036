"""Plain domain objects and rules; imports nothing from grpc or sqlalchemy."""
