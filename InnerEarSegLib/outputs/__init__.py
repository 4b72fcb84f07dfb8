"""What is made from the labels: measures, surfaces, planning measures, previews, and the files
written (NRRD/NIfTI, CSV/JSON, STL/VTP, DICOM SEG)."""
