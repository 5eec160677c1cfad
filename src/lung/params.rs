//! Every threshold and size of the lung mask, in one place, each with the reason for its value.
//! HU values assume calibrated CT; sizes are in mm and become pixels through the voxel spacing.

/// −320 HU separates aerated lung (about −900…−500) from soft tissue (about −100…+100) with a
/// margin for ground glass (about −700…−300), which must stay inside the lung.
pub const LUNG_THRESHOLD_HU: f32 = -320.0;

/// Pure air, HU: outside air and gas are ≤ −950 HU give or take noise; aerated lung has tissue
/// in every voxel (about −850 HU).
pub const PURE_AIR_HU: f32 = -950.0;
/// Pure air on an 8-bit image: black (outside air is 0–10 in these images; lung is 20–90 in
/// lung-windowed ones).
pub const PURE_AIR_8BIT: f32 = 10.0;
/// Components with more than this share of pure-air voxels are gas (stomach, bowel, the trachea
/// alone), not lung: even severe emphysema rarely has more than half its lung below −950 HU
/// (the LAA-950 index).
pub const GAS_FRACTION: f64 = 0.6;

/// Air inside the airways (trachea, main bronchi), HU: the lumen is air, aerated lung around
/// −850 HU is not.
pub const AIRWAY_HU: f32 = -900.0;
/// Largest cross-section of the trachea or a main bronchus, mm² (trachea ≤ 25 mm wide).
pub const AIRWAY_MAX_AREA_MM2: f64 = 600.0;
/// Smallest cross-section of the trachea where it is first found, mm² (smaller air specks are
/// noise or small bronchi).
pub const AIRWAY_MIN_AREA_MM2: f64 = 30.0;
/// The trachea starts within this distance of the body's midline, mm.
pub const AIRWAY_MIDLINE_MM: f64 = 25.0;
/// How far below its first slice the airway is followed, mm (trachea + main bronchi).
pub const AIRWAY_MAX_LENGTH_MM: f64 = 160.0;
/// The trachea must start within this distance of the top of the volume, mm.
pub const AIRWAY_START_MM: f64 = 30.0;

/// Closing radius that joins aerated lung broken up by disease, mm (single slices only: a volume
/// joins its pieces through z).
pub const CLOSING_MM: f64 = 3.0;
/// Opening radius that cuts thin air bridges (partial volume at the diaphragm, bowel gas under
/// the lung bases, skin folds), mm.
pub const OPENING_MM: f64 = 2.0;
/// A piece of dark pixels beside the lung in a slice with more than this share of pure air is
/// gas (stomach, bowel), not lung shaved off by the opening.
pub const RECLAIM_GAS_FRACTION: f64 = 0.2;
/// At most this many pieces of lung are kept (two lungs, each possibly cut by disease).
pub const MAX_PIECES: usize = 6;
/// A kept piece is at least this share of the largest candidate: bowel gas and the trachea
/// alone are smaller than a tenth of a lung.
pub const MIN_PIECE_SHARE_OF_LARGEST: usize = 10;
/// A lung covers at least 1/this of a slice's area on each slice it spans (up to three).
pub const MIN_LUNG_AREA_DIVISOR: usize = 100;
/// The final per-side closing, mm: joins the lung across vessels at the hilum and lesions at
/// the pleura before the holes (vessels, lesions inside) are filled.
pub const FINAL_CLOSING_MM: f64 = 5.0;

/// How far from the aerated lung a lesion may reach and still count as lung, mm: a consolidated
/// segment at the pleura leaves such a bay in the aerated lung.
pub const ENVELOPE_MM: f64 = 15.0;
/// How far past the lung's convex hull a lesion may reach, mm (the pleura is curved).
pub const HULL_MARGIN_MM: f64 = 3.0;
