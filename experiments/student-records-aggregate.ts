/** Student Records ("drops in the ocean"), aggregate questions: PERK vs FT-ICR. */
import { studentRecords } from "./families.ts";

export default studentRecords("aggregate");
