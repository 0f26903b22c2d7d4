"""Generated v1alpha1 stubs (from proto/v1alpha1/service.proto); do not edit by hand."""
