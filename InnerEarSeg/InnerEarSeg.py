"""3D Slicer module: inner-ear segmentation (cochlea, vestibule, semicircular canals).

Thin by design: the panel collects options, the segmentation runs in a separate process, the
product's own command line (``innerear-seg segment ... --events json``, ``InnerEarSegSlicerLib.job``),
so Slicer stays responsive and Cancel can stop it at once, and ``InnerEarSegSlicerLib.logic``
builds the MRML nodes from the files it wrote. The options (their parameter-node fields, widgets
and the command's flags) all come from ``InnerEarSegLib.parameters.SegmentParameters`` through
``InnerEarSegSlicerLib.panel``.
"""
import logging
import os
import pathlib
import shutil
import sys
import tempfile

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

_HERE = os.path.dirname(os.path.abspath(__file__))
if not os.path.isdir(os.path.join(_HERE, "InnerEarSegLib")):  # source checkout: the library is one level up
    sys.path.insert(0, os.path.dirname(_HERE))

from InnerEarSegSlicerLib import dependencies, job as jobs, logic as mrmlLogic, panel  # noqa: E402

HELP = """Segments the inner ear (cochlea, vestibule and semicircular canals, left and right) in
temporal-bone MRI (heavily T2-weighted) and CT, and measures each structure (volume, surface area,
centroid). Choose a volume and press Apply; the result is a segmentation with one segment per
structure and side, 3D surfaces and a statistics table.
<br><br><b>Limits:</b> the bundled model was trained on synthetic images only and has never seen a
real scan. For research use only; not for clinical decisions. Always review the result.
<br><br>Method after Vaidyanathan A. et al., Deep learning for the fully automated segmentation of the
inner ear on MRI, Scientific Reports 11, 2885 (2021)."""

ACKNOWLEDGEMENT = """InnerEarSeg is built on 3D Slicer, MONAI, PyTorch, SimpleITK and VTK."""


class InnerEarSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Inner Ear Segmentation"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["Segmentations", "Terminologies"]
        self.parent.contributors = ["InnerEarSeg contributors"]
        self.parent.helpText = HELP
        self.parent.acknowledgementText = ACKNOWLEDGEMENT
        slicer.app.connect("startupCompleted()", registerTerminology)


def registerTerminology():
    """Make the vestibule and canal codes known to Slicer's terminology selector."""
    path = os.path.join(_HERE, "Resources", "InnerEarSeg.term.json")
    slicer.modules.terminologies.logic().LoadTerminologyFromFile(path)


class InnerEarSegParameterNode:
    """The panel's own fields; one field per segmentation option is added from the declaration
    (``panel.withOptions``: ``device``, ``modality``, ``tta``, ``cpu_bf16``... as on the command line)."""

    inputVolume: vtkMRMLScalarVolumeNode
    modelPath: pathlib.Path  # empty: the bundled model
    outputSegmentation: vtkMRMLSegmentationNode
    statistics: vtkMRMLTableNode
    measures: vtkMRMLTableNode  # surgical-planning measures (InnerEarSegLib.outputs.planning)


InnerEarSegParameterNode = parameterNodeWrapper(panel.withOptions(InnerEarSegParameterNode, Choice, WithinRange))


class InnerEarSegLogic(ScriptedLoadableModuleLogic, mrmlLogic.InnerEarSegLogic):
    """Slicer's module logic: the parameter node plus the MRML logic (usable from the console)."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        mrmlLogic.InnerEarSegLogic.__init__(self)

    def getParameterNode(self):
        return InnerEarSegParameterNode(super().getParameterNode())


def optionWidgetClasses():
    """Slicer's widget for each kind of option (``panel.addOptionWidgets``)."""
    import ctk
    return {"choice": qt.QComboBox, "range": ctk.ctkSliderWidget, "bool": qt.QCheckBox}


def pythonExecutable():
    """Slicer's ``PythonSlicer`` (a launcher that sets up the environment), else this Python."""
    return shutil.which("PythonSlicer") or sys.executable


class InnerEarSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None, optionWidgetClasses=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.optionWidgetClasses = optionWidgetClasses  # None: Slicer's (tests give their own)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.job = None  # the running or last SegmentationJob; its state drives the panel
        self.jobFolder = None
        self.jobParameters = None  # the SegmentParameters the running job was started with
        self.jobInput = None  # the volume's file the running job segments
        self.installing = False  # the job is pip installing what is missing; the segmentation follows

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/InnerEarSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        classes = self.optionWidgetClasses or optionWidgetClasses()
        for name, widget in panel.addOptionWidgets(self.ui.optionsCollapsibleButton.layout(), classes).items():
            setattr(self.ui, name, widget)  # connectGui binds what self.ui holds
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = InnerEarSegLogic()
        self.timer = qt.QTimer()
        self.timer.setInterval(200)
        self.timer.connect("timeout()", self.onPoll)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.updateModelCard)
        self.ui.show3DButton.connect("clicked(bool)", self.onShow3D)
        self.ui.exportSurfacesButton.connect("clicked(bool)", self.onExportSurfaces)
        self.ui.exportStatisticsButton.connect("clicked(bool)", self.onExportStatistics)
        self.initializeParameterNode()
        self.updateModelCard()

    def cleanup(self):
        self.cancelJob()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.disconnectParameterNode()  # the node is kept: a running job still needs it

    def onSceneStartClose(self, caller, event):
        self.cancelJob()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def disconnectParameterNode(self):
        if self._parameterNode and self._parameterNodeGuiTag:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI)

    def setParameterNode(self, parameterNode):
        self.disconnectParameterNode()
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI)
        self.updateGUI()

    def running(self):
        return self.job is not None and self.job.state == jobs.RUNNING

    def updateGUI(self, caller=None, event=None):
        """One place maps the job state (idle, running, done, failed, cancelled) to the panel."""
        p = self._parameterNode
        running = self.running()
        self.ui.applyButton.text = "Cancel" if running else "Apply"
        self.ui.applyButton.enabled = running or bool(p and p.inputVolume)
        self.ui.applyButton.toolTip = "Stop the segmentation" if running else "Segment the inner ears of the input volume"
        for widget in (self.ui.inputsCollapsibleButton, self.ui.optionsCollapsibleButton, self.ui.outputsCollapsibleButton):
            widget.enabled = not running
        hasResult = bool(p and p.outputSegmentation)
        self.ui.show3DButton.enabled = hasResult and not running
        self.ui.exportSurfacesButton.enabled = hasResult and not running
        self.ui.exportStatisticsButton.enabled = bool(p and p.statistics) and not running
        if p and p.statistics:
            self.ui.statisticsTableView.setMRMLTableNode(p.statistics)

    def updateModelCard(self, path=None):
        self.ui.modelCardLabel.text = mrmlLogic.model_card_summary(self.ui.modelPathLineEdit.currentPath or None)

    def modelPath(self):
        """The model the user picked, or None for the bundled one; a path that is not a file is an error."""
        return mrmlLogic.chosen_model(self.ui.modelPathLineEdit.currentPath)

    def segmentParameters(self):
        """The options set in the panel, as the library and the command line take them."""
        return panel.segmentParameters(self._parameterNode)

    # --- run, poll, finish ------------------------------------------------------------------

    def onApplyButton(self):
        if self.running():
            self.cancelJob()
            self.ui.statusLabel.text = "Cancelled."
            return
        try:
            with slicer.util.tryWithErrorDisplay("Could not start the segmentation.", waitCursor=True):
                self.startJob()
        except Exception:
            self.removeJobFolder()  # the error was shown; leave nothing behind
        self.updateGUI()

    def startJob(self):
        """Check the model path, install what is missing (after asking; pip runs as a watched
        process, so the panel stays responsive), then start the segmentation."""
        self.modelPath()  # a mistyped path stops here, before anything is installed or written
        requirements = dependencies.find_requirements(_HERE)
        missing = dependencies.install_torch_if_needed(requirements, slicer.util.confirmOkCancelDisplay)
        if missing is None:
            self.ui.statusLabel.text = "Python packages not installed; nothing done."
            return
        self.jobFolder = tempfile.mkdtemp(prefix="InnerEarSeg-")
        if not missing:
            self.startSegmentation()
            return
        constraints = dependencies.write_constraints(os.path.join(self.jobFolder, "constraints.txt"))
        self.installing = True
        self.job = jobs.SegmentationJob(dependencies.pip_command(pythonExecutable(), missing, constraints))
        self.ui.statusLabel.text = "Installing Python packages..."
        self.job.start()
        self.timer.start()

    def startSegmentation(self):
        """Write the input and run the command line on it."""
        self.installing = False
        volume = self._parameterNode.inputVolume
        self.jobParameters = self.segmentParameters()
        self.jobInput = self.logic.writeInput(volume, os.path.join(self.jobFolder,
                                                                   mrmlLogic.input_file_name(volume.GetName())))
        command = jobs.segment_command(pythonExecutable(), self.jobInput, os.path.join(self.jobFolder, "output"),
                                       self.modelPath(), mrmlLogic.library_parameters(self.jobParameters))
        self.job = jobs.SegmentationJob(command, jobs.command_environment(str(mrmlLogic.library_parent())),
                                        onProgress=self.onProgress)
        self.ui.progressBar.value = 0
        self.ui.statusLabel.text = "Starting..."
        self.job.start()
        self.timer.start()

    def onProgress(self, stage, fraction, message):
        self.ui.progressBar.value = int(100 * fraction)
        self.ui.statusLabel.text = f"{stage}: {message}" if message else stage

    def onPoll(self):
        state = self.job.poll()
        if state == jobs.RUNNING:
            if self.installing and self.job.output():
                self.ui.statusLabel.text = "Installing: " + self.job.output()[-1][:100]
            return
        self.timer.stop()
        if self.installing:
            self.finishInstall(state)
            return
        try:
            if state == jobs.DONE:
                with slicer.util.tryWithErrorDisplay("Could not load the segmentation.", waitCursor=True):
                    self.loadResult()
            elif state == jobs.FAILED:
                self.ui.statusLabel.text = "Failed."
                volume = self._parameterNode.inputVolume
                error = mrmlLogic.named_error(self.job.error, self.jobInput,
                                              volume.GetName() if volume else "the input volume")
                slicer.util.errorDisplay(f"Segmentation failed: {error}")
        except Exception:
            self.ui.statusLabel.text = "Failed."  # shown by tryWithErrorDisplay; the scene is unchanged
        finally:
            self.removeJobFolder()
            self.updateGUI()

    def finishInstall(self, state):
        """The pip job ended: start the segmentation, or say why the installation failed."""
        self.installing = False
        try:
            if state == jobs.DONE:
                with slicer.util.tryWithErrorDisplay("Could not start the segmentation.", waitCursor=True):
                    self.startSegmentation()
                return
            slicer.util.errorDisplay(f"Installing the Python packages failed: {self.job.error}")
        except Exception:
            pass  # shown by tryWithErrorDisplay
        finally:
            if not self.running():
                self.ui.statusLabel.text = "Failed."
                self.removeJobFolder()
            self.updateGUI()

    def loadResult(self):
        p = self._parameterNode
        if not p.inputVolume:
            raise RuntimeError("the input volume was removed from the scene while it was being segmented")
        caseFolder = os.path.join(self.jobFolder, "output", mrmlLogic.case_name(self.jobInput))
        outputs = self.logic.importResultFiles(caseFolder, p.inputVolume,
                                               p.outputSegmentation, smoothing=self.jobParameters.smoothing,
                                               surfaces=self.jobParameters.surfaces)
        p.outputSegmentation = outputs.segmentationNode
        p.statistics = outputs.tableNode
        p.measures = mrmlLogic.add_measures(self.logic, outputs.segmentationNode,  # and markups, as measured
                                            *mrmlLogic.read_measures(caseFolder))   # by the command line
        self.ui.measuresTableView.setMRMLTableNode(p.measures)
        slicer.util.setSliceViewerLayers(background=p.inputVolume)
        outputs.segmentationNode.GetDisplayNode().SetVisibility(True)
        count = outputs.segmentationNode.GetSegmentation().GetNumberOfSegments()
        warnings = outputs.result.warnings or self.job.warnings
        self.ui.progressBar.value = 100
        self.ui.statusLabel.text = f"Done: {count} segments." + (" Warning: " + "; ".join(warnings) if warnings else "")

    def cancelJob(self):
        if self.running():
            self.installing = False
            self.job.cancel()
            self.timer.stop()
            self.removeJobFolder()
            self.updateGUI()

    def removeJobFolder(self):
        if self.jobFolder:
            shutil.rmtree(self.jobFolder, ignore_errors=True)
            self.jobFolder = None

    # --- results --------------------------------------------------------------------------

    def onShow3D(self):
        segNode = self._parameterNode.outputSegmentation
        segNode.CreateClosedSurfaceRepresentation()
        segNode.GetDisplayNode().SetVisibility3D(True)
        slicer.util.resetThreeDViews()

    def onExportSurfaces(self):
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), "Export surfaces to folder")
        if folder:
            with slicer.util.tryWithErrorDisplay("Could not export the surfaces.", waitCursor=True):
                fileFormat = self.ui.surfaceFormatComboBox.currentText
                self.logic.exportSurfaces(self._parameterNode.outputSegmentation, folder, fileFormat)
                self.ui.statusLabel.text = f"Surfaces written to {folder} ({fileFormat}, LPS coordinates)."

    def onExportStatistics(self):
        path = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), "Export statistics", "inner_ear_stats.csv",
                                              "CSV files (*.csv)")
        if path:
            with slicer.util.tryWithErrorDisplay("Could not export the statistics.", waitCursor=True):
                self.logic.exportStatistics(self._parameterNode.statistics, path)
                self.ui.statusLabel.text = f"Statistics written to {path}."


class InnerEarSegTest(ScriptedLoadableModuleTest):
    """The whole path in a running Slicer: a volume built here, the command line's process, the MRML nodes.
    No network: a tiny random model is written to a temporary folder (the result is not judged)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def makeVolume(self):
        import numpy as np
        array = np.zeros((40, 48, 56), np.float32)  # k, j, i
        array[16:24, 20:28, 10:18] = 1000.0  # two bright blobs, one per side
        array[16:24, 20:28, 38:46] = 1000.0
        ijkToRas = np.array([[-0.5, 0, 0, 14.0], [0, -0.5, 0, 12.0], [0, 0, 0.6, -10.0], [0, 0, 0, 1]])
        return slicer.util.addVolumeFromArray(array, ijkToRas, "InnerEarSegTestVolume")

    def test_in_process_geometry(self):
        """The logic with a stand-in segmenter: segments land on the input voxels."""
        import numpy as np
        import SimpleITK as sitk
        from InnerEarSegLib.core.result import SegmentationResult

        def segmenter(image, **kwargs):
            labels = sitk.Cast(image > 500, sitk.sitkUInt8)
            return SegmentationResult(labels=labels, sides=labels * 2)
        volume = self.makeVolume()
        logic = InnerEarSegLogic()
        logic.segmenter = segmenter
        outputs = logic.process(volume)
        segNode = outputs.segmentationNode
        exported = slicer.util.arrayFromSegmentBinaryLabelmap(segNode, "cochlea_left", volume)
        self.assertTrue(np.array_equal(exported > 0, slicer.util.arrayFromVolume(volume) > 500))
        self.assertEqual(segNode.GetSegmentation().GetSegment("cochlea_left").GetName(), "Cochlea left")

    def test_out_of_process(self):
        """Apply in the panel with the real command line, pipeline and a tiny model."""
        import time
        missing = dependencies.missing_requirements(dependencies.find_requirements(_HERE))
        try:
            import torch
        except ImportError:
            missing.append("torch")
        if missing:  # installing needs the network; this test must not
            self.skipTest(f"not installed: {', '.join(missing)}; press Apply once in the module to install them")
        from InnerEarSegLib.model.model_card import default_card, save_model
        from InnerEarSegLib.model.network import AttentionPyramidUNet
        folder = tempfile.mkdtemp(prefix="InnerEarSegTest-")
        try:
            torch.manual_seed(0)
            card = default_card()
            card["preprocessing"].update({"spacing_mm": 0.5, "patch_size": [32, 32, 32],
                                          "ear_region_mm": [16.0, 16.0, 16.0], "localizer_patch_size": [32, 32, 32]})
            modelPath = save_model(os.path.join(folder, "tiny.json"),
                                   {"segmenter": AttentionPyramidUNet(1, 4, (4, 8)),
                                    "localizer": AttentionPyramidUNet(1, 2, (4, 8))}, card)
            volume = self.makeVolume()
            slicer.util.selectModule("InnerEarSeg")
            widget = slicer.util.getModuleWidget("InnerEarSeg")
            widget._parameterNode.inputVolume = volume
            widget._parameterNode.device = "cpu"
            widget.ui.modelPathLineEdit.currentPath = str(modelPath)
            widget.onApplyButton()
            self.assertEqual(widget.job.state, jobs.RUNNING)
            deadline = time.time() + 300
            while widget.running() and time.time() < deadline:
                slicer.app.processEvents()
                time.sleep(0.1)
            self.assertEqual(widget.job.state, jobs.DONE, widget.job.error)
            segNode = widget._parameterNode.outputSegmentation
            self.assertIsNotNone(segNode)
            self.assertIs(segNode.GetNodeReference(segNode.GetReferenceImageGeometryReferenceRole()), volume)
            self.assertIsNotNone(widget._parameterNode.statistics)
            self.assertIsNone(widget.jobFolder)  # temporary files removed
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def test_cancel(self):
        """Cancel kills the process and leaves the scene unchanged."""
        slicer.util.selectModule("InnerEarSeg")
        widget = slicer.util.getModuleWidget("InnerEarSeg")
        before = slicer.mrmlScene.GetNumberOfNodes()
        widget.job = jobs.SegmentationJob([shutil.which("PythonSlicer") or sys.executable, "-c",
                                           "import time; time.sleep(60)"])
        widget.job.start()
        widget.onApplyButton()  # the button is Cancel while running
        self.assertEqual(widget.job.state, jobs.CANCELLED)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), before)
        logging.info("InnerEarSeg: cancel test passed")
