"""(Methods of this family are registered here as they land.)"""
